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

from kafkaml.kafka import KafkaSettings
from kafkaml.runtime import tune_collector_for_streaming
from model_inference.backend import JobApiClient
from model_inference.clients import build_service
from model_inference.settings import InferenceSettings, JobApiSettings, SettingsError
from model_inference.spec import BackendSpecSource, FileSpecSource, SpecSource

log = logging.getLogger("model_inference")


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
    """Serve until SIGTERM or SIGINT. Raises whatever makes the inference stop."""
    stop = _stop_on_signals()
    spec, service = build_service(settings, kafka, spec_source(settings, job))
    tune_collector_for_streaming()
    if settings.metrics_port:
        service.metrics.serve(settings.metrics_port)
    log.info("inference %s replica %s serving model %s: %s -> %s",
             spec.inference_id, settings.replica_name, service.model_version,
             spec.input_topic, spec.output_topic)  # fmt: skip
    service.subscribe(spec.input_topic)
    try:
        service.run(stop)
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


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the loop finishes its batch and returns."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


if __name__ == "__main__":
    sys.exit(main())
