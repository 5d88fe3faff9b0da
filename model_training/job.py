"""One training job from start to end: mark running, wait for the control message, train.

Failures are reported by `report_failure` (called at the top of __main__); a stop request
(SIGTERM) raises StopRequested between two Python steps of training or reading, so the process
ends promptly with EXIT_STOPPED and reports nothing: recording `stopped` is the backend's part,
since it asked for the stop.
"""

from __future__ import annotations

import logging
import secrets
import signal
from collections.abc import Sequence
from types import FrameType

from confluent_kafka import Consumer

from model_training.control import wait_for_control
from model_training.modes import Job, train
from model_training.reporting import ReportingError, ResultSink

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_STOPPED = 128 + signal.SIGTERM  # 143, the shell's code for "ended by SIGTERM"


class StopRequested(BaseException):
    """SIGTERM arrived. A BaseException, so no `except Exception` in user or framework code
    turns a stop into a training error."""


def install_stop_handler() -> None:
    """Make SIGTERM raise StopRequested in the main thread."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise StopRequested(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def run(job: Job, control_consumer: Consumer, control_timeout_s: float) -> None:
    """Mark every result running, wait for the control message, train in the spec's mode.

    Raises whatever fails (ControlTimeoutError, DecodeError, RangeReadError, ModelCodeError,
    TrainingSettingsError, ReportingError, ...); the caller reports it with report_failure.
    """
    for sink in job.sinks:
        sink.running()
    spec = job.spec
    log.info(
        "waiting for the control message of deployment %s on %r since %s",
        spec.deployment_id,
        spec.control_topic,
        spec.deployment_created_at.isoformat(),
    )
    announcement = wait_for_control(
        control_consumer,
        spec.control_topic,
        spec.deployment_id,
        spec.deployment_created_at,
        control_timeout_s,
    )
    control_consumer.close()
    train(job, announcement)
    log.info("training finished; results %s reported", spec.result_ids)


def report_failure(sinks: Sequence[ResultSink], error: BaseException) -> None:
    """Set every result failed with the error as the reason; a sink that cannot be reached
    is logged (the process still exits non-zero, which the runner records)."""
    reason = failure_reason(error)
    for sink in sinks:
        try:
            sink.fail(reason)
        except ReportingError as unreachable:
            log.error("could not report the failure of result %s: %s", sink.result_id, unreachable)


def failure_reason(error: BaseException) -> str:
    """The reason shown to the user: what failed and the facts the error carries."""
    return f"{type(error).__name__}: {error}"


def choose_seed(configured: int | None) -> int:
    """The configured shuffle seed, or a fresh random one (recorded in the final metrics)."""
    return configured if configured is not None else secrets.randbits(31)
