"""`python -m model_inference`: one inference replica, configured by `KAFKAML_*` variables.

Exit status 0 after SIGTERM/SIGINT (the batch in hand is committed first); non-zero, with the
reason as the last line on stderr, when anything fatal happens, so the runner can record it.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from types import FrameType

log = logging.getLogger("model_inference")
STOP = threading.Event()
"""Set by SIGTERM or SIGINT: the loop finishes its batch and returns."""


def _stop_on_signals() -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in hand", signal.Signals(signum).name)
        STOP.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


if __name__ == "__main__":
    # Before the imports below (seconds on a busy machine): a stop that comes while the
    # replica starts is a stop (exit 0 once started), not a kill by the default handler.
    _stop_on_signals()

from kafkaml.kafka import KafkaSettings  # noqa: E402
from kafkaml.runtime import tune_collector_for_streaming  # noqa: E402
from model_inference.backend import JobApiClient  # noqa: E402
from model_inference.clients import build_service  # noqa: E402
from model_inference.settings import InferenceSettings, JobApiSettings, SettingsError  # noqa: E402
from model_inference.spec import BackendSpecSource, FileSpecSource, SpecSource  # noqa: E402


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # `kill -USR1 <pid>` writes every thread's stack to the log: where a stuck replica waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        run(InferenceSettings(), JobApiSettings(), KafkaSettings())
    except Exception as error:  # the top of the process: report the reason, exit non-zero
        log.exception("inference failed")
        print(f"inference failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def run(settings: InferenceSettings, job: JobApiSettings, kafka: KafkaSettings) -> None:
    """Serve until SIGTERM or SIGINT (`STOP`). Raises whatever makes the inference stop."""
    spec, service = build_service(settings, kafka, spec_source(settings, job))
    tune_collector_for_streaming()
    if settings.metrics_port:
        service.metrics.serve(settings.metrics_port)
    log.info("inference %s replica %s serving model %s: %s -> %s",
             spec.inference_id, settings.replica_name, service.model_version,
             spec.input_topic, spec.output_topic)  # fmt: skip
    service.subscribe(spec.input_topic)
    try:
        service.run(STOP)
    finally:
        service.close()
    log.info("stopped")


def spec_source(settings: InferenceSettings, job: JobApiSettings) -> SpecSource:
    """The spec file when one is set, otherwise the backend's job API.

    Raises SettingsError when neither is configured completely.
    """
    if settings.spec_file is not None:
        return FileSpecSource(settings.spec_file, settings.id)
    if job.job_token is None or settings.id is None:
        raise SettingsError(
            "set KAFKAML_INFERENCE_SPEC_FILE, or both KAFKAML_JOB_TOKEN and "
            "KAFKAML_INFERENCE_ID (with KAFKAML_BACKEND_URL)"
        )
    client = JobApiClient(job.backend_url, job.job_token.get_secret_value())
    return BackendSpecSource(client, settings.id)


if __name__ == "__main__":
    sys.exit(main())
