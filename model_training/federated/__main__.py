"""`python -m model_training.federated`: a federated worker. Settings -> clients -> run.

With the backend it joins every federated deployment its dataset fits, now and later, and
exits 0 once none has come for KAFKAML_WORKER_IDLE_TIMEOUT_S (never, unset), or 1 when a
deployment failed here. Without it (KAFKAML_FEDERATED_DEPLOYMENT_ID) it serves that one
deployment. Exit codes: 0 done, 1 failed, 3 the dataset does not fit the one deployment.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from kafkaml.federated import signing_key
from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer
from kafkaml.rest import BackendError, RestClient
from model_training.federated.discovery import Discovery
from model_training.federated.exchange import exchange_topics
from model_training.federated.settings import FederatedWorkerSettings
from model_training.federated.worker import LocalDataset, NotSelectedError, Worker, load_dataset

log = logging.getLogger("model_training.federated")
EXIT_NOT_SELECTED = 3


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = FederatedWorkerSettings()  # type: ignore[call-arg]  # required fields from env
        kafka = KafkaSettings()
        credential = settings.worker_credential.get_secret_value()
        discovery = None
        if settings.federated_deployment_id is None:
            discovery = Discovery(RestClient(settings.backend_url, credential),
                                  settings.worker_dataset)  # fmt: skip
            worker_id = discovery.worker_id()
        elif settings.worker_id is None:
            raise ValueError("KAFKAML_FEDERATED_DEPLOYMENT_ID needs KAFKAML_WORKER_ID")
        else:
            worker_id = settings.worker_id
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
        log.info("worker %s ready: %d training samples", worker_id, data.samples)
        site = Site(worker_id, signing_key(credential), kafka, data, settings)
        if discovery is None:
            site.serve(settings.federated_deployment_id or 0)
            return 0
        return site.serve_discovered(discovery)
    except NotSelectedError as error:
        log.warning("not taking part: %s", error)
        return EXIT_NOT_SELECTED
    except Exception:  # the worker's single top: log and exit non-zero
        log.exception("federated worker failed")
        return 1


class Site:
    """The worker at its data owner's site: one dataset, serving one or more deployments."""

    def __init__(
        self,
        worker_id: str,
        key: bytes,
        kafka: KafkaSettings,
        data: LocalDataset,
        settings: FederatedWorkerSettings,
    ) -> None:
        self.worker_id, self.key, self.kafka, self.data = worker_id, key, kafka, data
        self.settings = settings
        self.failed: list[int] = []

    def serve(self, deployment_id: int, discovery: Discovery | None = None) -> None:
        """Train the deployment's rounds until its coordinator is done (Worker.run raises).
        A joined deployment (`discovery`) is waited for while the backend lists it."""
        topics = exchange_topics(deployment_id)
        ensure_topics(make_admin(self.kafka), [topics.global_weights, topics.updates])
        worker = Worker(
            worker_id=self.worker_id,
            key=self.key,
            producer=make_producer(self.kafka),
            consumer=make_consumer(self.kafka),
            topics=topics,
            data=self.data,
            chunk_bytes=self.settings.federated_chunk_bytes,
        )
        try:
            if discovery is None:
                worker.run(self.settings.worker_idle_timeout_s)
            else:
                worker.run(
                    max(self.settings.worker_discovery_interval_s, 1.0),
                    lambda: discovery.still_training(deployment_id),
                )
        finally:
            worker.consumer.close()

    def serve_discovered(self, discovery: Discovery) -> int:
        """Join and serve each deployment that fits, each in its own thread, until none has run
        or come for the idle timeout; 1 when one failed here, else 0."""
        threads: dict[int, threading.Thread] = {}
        idle_since = time.monotonic()
        idle_timeout = self.settings.worker_idle_timeout_s
        while True:
            try:
                joined = discovery.join_new(threads)
            except BackendError as error:
                if error.status is not None and error.status < 500:
                    raise  # refused (a revoked credential: 401), not an outage
                log.warning("no deployments this time: %s", error)  # ask again next time
                joined = []
            for assignment in joined:
                thread = threading.Thread(
                    target=self._serve_logged,
                    args=(assignment.deployment_id, discovery),
                    daemon=True,
                )
                threads[assignment.deployment_id] = thread
                thread.start()
            if any(thread.is_alive() for thread in threads.values()):
                idle_since = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                log.info("no deployment for %g s: done (%s)", idle_timeout, sorted(threads))
                return 1 if self.failed else 0
            time.sleep(self.settings.worker_discovery_interval_s)  # the backend is polled

    def _serve_logged(self, deployment_id: int, discovery: Discovery) -> None:
        try:
            self.serve(deployment_id, discovery)
            log.info("deployment %d: done", deployment_id)
        except NotSelectedError as error:
            log.warning("deployment %d: not taking part: %s", deployment_id, error)
        except Exception:  # one deployment's failure must not end the others'
            log.exception("deployment %d failed", deployment_id)
            self.failed.append(deployment_id)


if __name__ == "__main__":
    sys.exit(main())
