"""`python -m model_training`: settings -> clients -> run.

Exit codes: 0 finished, 1 failed (reported to the result when possible), 143 stopped (SIGTERM).
"""

from __future__ import annotations

import logging
import sys

from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, make_consumer
from model_training.device import log_device
from model_training.job import (
    EXIT_FAILED,
    EXIT_STOPPED,
    StopRequested,
    choose_seed,
    install_stop_handler,
    report_failure,
    run,
)
from model_training.modes import Job
from model_training.readers import make_reader
from model_training.reporting import ResultSink, open_sinks
from model_training.settings import TrainingSettings
from model_training.spec import parse_spec

log = logging.getLogger("model_training")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_stop_handler()
    sinks: list[ResultSink] = []
    try:
        settings = TrainingSettings()
        kafka = KafkaSettings()
        sinks, documents = open_sinks(
            backend_url=settings.backend_url,
            result_ids=settings.parsed_result_ids(),
            tokens=settings.tokens(),
            spec_file=settings.training_spec_file,
            output_dir=settings.training_output_dir,
            retries=settings.training_http_retries,
            deadline_s=settings.training_report_deadline_s,
        )
        spec = parse_spec(documents)
        framework = get_framework(spec.framework)
        log_device(spec.framework)
        reader_name = settings.training_reader or spec.reader
        job = Job(
            spec=spec,
            framework=framework,
            sinks=sinks,
            reader=make_reader(
                reader_name,
                spec.framework,
                kafka,
                settings.training_stall_timeout_s,
                # An incremental job reads its online topic, never ranges.
                start_ahead=spec.mode != "incremental",
            ),
            seed=choose_seed(settings.training_seed),
            memory_limit_bytes=settings.training_memory_limit_mb * 2**20,
            spill_dir=settings.training_spill_dir,
            online_consumer=make_consumer(kafka),
        )
        run(job, make_consumer(kafka), settings.training_control_timeout_s)
    except StopRequested:
        log.warning("stop requested: exiting")
        return EXIT_STOPPED
    except Exception as error:  # the job's single top: any failure is reported, then exit 1
        log.exception("training failed")
        report_failure(sinks, error)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
