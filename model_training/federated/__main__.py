"""`python -m model_training.federated`: a federated worker. Settings -> clients -> run.

Exit codes: 0 the coordinator finished, 1 failed, 3 the dataset does not fit the deployment.
"""

from __future__ import annotations

import logging
import sys

from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer
from model_training.federated.exchange import exchange_topics
from model_training.federated.settings import FederatedWorkerSettings
from model_training.federated.worker import NotSelectedError, Worker, load_dataset

log = logging.getLogger("model_training.federated")
EXIT_NOT_SELECTED = 3


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = FederatedWorkerSettings()  # type: ignore[call-arg]  # required fields from env
        kafka = KafkaSettings()
        topics = exchange_topics(settings.federated_deployment_id)
        ensure_topics(make_admin(kafka), [topics.global_weights, topics.updates])
        data = load_dataset(
            make_consumer(kafka),
            kafka,
            settings.dataset_control_topic,
            settings.dataset_id,
            timeout_s=settings.worker_data_timeout_s,
            seed=settings.worker_seed,
        )
        if settings.worker_framework is not None:
            get_framework(settings.worker_framework)  # imports it now rather than in round 0
        log.info("worker %s ready: %d training samples", settings.worker_id, data.samples)
        worker = Worker(
            worker_id=settings.worker_id,
            key=settings.worker_credential.get_secret_value().encode(),
            producer=make_producer(kafka),
            consumer=make_consumer(kafka),
            topics=topics,
            data=data,
            chunk_bytes=settings.federated_chunk_bytes,
        )
        worker.run(settings.worker_idle_timeout_s)
    except NotSelectedError as error:
        log.warning("not taking part: %s", error)
        return EXIT_NOT_SELECTED
    except Exception:  # the worker's single top: log and exit non-zero
        log.exception("federated worker failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
