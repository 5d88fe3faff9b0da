"""Federated rounds in one process, on a real broker: workers in threads beside the caller's
coordinator. What the benchmark and the accuracy test share; a real deployment runs each
worker at its data owner's site and the coordinator as the deployment's job."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from model_training.federated.coordinator import Coordinator
from model_training.federated.exchange import ExchangeTopics
from model_training.federated.worker import LocalDataset, Worker


@contextmanager
def federation(
    kafka: KafkaSettings,
    topics: ExchangeTopics,
    datasets: Mapping[str, tuple[bytes, LocalDataset]],
    *,
    idle_timeout_s: float = 300.0,
) -> Iterator[tuple[Coordinator, list[Worker]]]:
    """A started coordinator and one worker thread per `{worker id: (key, dataset)}`.

    The caller runs the rounds and calls `coordinator.finish`; on leaving, the worker threads
    are waited for (they end at `done`, or after `idle_timeout_s` without a round). When the
    caller raises, they are not: they are daemon threads, gone with the process.
    """
    keys = {name: key for name, (key, _) in datasets.items()}
    workers = [
        Worker(name, key, make_producer(kafka), make_consumer(kafka), topics, data)
        for name, (key, data) in datasets.items()
    ]
    threads = [
        threading.Thread(target=worker.run, args=(idle_timeout_s,), daemon=True)
        for worker in workers
    ]
    for thread in threads:
        thread.start()
    coordinator = Coordinator(make_producer(kafka), make_consumer(kafka), topics, lambda: keys)
    coordinator.start()
    yield coordinator, workers
    for thread in threads:
        thread.join(idle_timeout_s + 60)
    for worker in workers:
        worker.consumer.close()
    coordinator.consumer.close()
