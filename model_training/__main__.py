"""`python -m model_training`: settings -> clients -> run.

Exit codes: 0 finished, 1 failed (reported to the result when possible), 143 stopped (SIGTERM).
"""

from __future__ import annotations

import logging
import sys

from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer
from model_training.device import log_device
from model_training.federated.coordinator import (
    Coordinator,
    backend_keys,
    static_keys,
    train_federated,
)
from model_training.federated.exchange import exchange_topics, parse_credentials
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
from model_training.reporting import JobApi, ResultSink, open_sinks
from model_training.settings import TrainingSettings
from model_training.spec import JobSpec, SpecError, parse_spec

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
                # An incremental job reads its online topic, never ranges; a federated one no data.
                start_ahead=spec.mode not in ("incremental", "federated"),
            ),
            seed=choose_seed(settings.training_seed),
            memory_limit_bytes=settings.training_memory_limit_mb * 2**20,
            spill_dir=settings.training_spill_dir,
            online_consumer=make_consumer(kafka),
        )
        if spec.mode == "federated":
            train_federated(job, _coordinator(spec, settings, kafka))
        else:
            run(job, make_consumer(kafka), settings.training_control_timeout_s)
    except StopRequested:
        log.warning("stop requested: exiting")
        return EXIT_STOPPED
    except Exception as error:  # the job's single top: any failure is reported, then exit 1
        log.exception("training failed")
        report_failure(sinks, error)
        return EXIT_FAILED
    return 0


def _coordinator(spec: JobSpec, settings: TrainingSettings, kafka: KafkaSettings) -> Coordinator:
    """The federated deployment's exchange clients: it trains no data, so it reads none. Its
    workers are those that joined the deployment in the backend, or, for a job without a
    backend, those of KAFKAML_FEDERATED_CREDENTIALS."""
    if settings.federated_credentials is not None:
        keys = static_keys(parse_credentials(settings.federated_credentials.get_secret_value()))
    elif settings.training_spec_file is None:
        token = settings.tokens()[0]
        keys = backend_keys(JobApi(settings.backend_url, spec.models[0].result_id, token))
    else:
        raise SpecError("a federated job without a backend needs KAFKAML_FEDERATED_CREDENTIALS")
    topics = exchange_topics(spec.deployment_id)
    ensure_topics(make_admin(kafka), [topics.global_weights, topics.updates])
    return Coordinator(
        producer=make_producer(kafka),
        consumer=make_consumer(kafka),
        topics=topics,
        keys=keys,
        chunk_bytes=settings.federated_chunk_bytes,
    )


if __name__ == "__main__":
    sys.exit(main())
