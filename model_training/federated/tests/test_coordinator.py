"""The coordinator in-process on the real broker: which updates a round takes."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient

from kafkaml.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer
from model_training.federated.coordinator import Coordinator, RoundFailedError
from model_training.federated.exchange import UPDATE, Envelope, exchange_topics, publish

KEYS = {"worker-a": b"key-a", "worker-b": b"key-b"}
WEIGHTS = [np.zeros(3, np.float32)]


@pytest.fixture
def coordinator(kafka_settings: KafkaSettings, kafka_admin: AdminClient) -> Iterator[Coordinator]:
    topics = exchange_topics(random.randrange(10**6, 2**31), prefix="test-federated")
    ensure_topics(kafka_admin, [topics.global_weights, topics.updates])
    coordinator = Coordinator(
        make_producer(kafka_settings), make_consumer(kafka_settings), topics, KEYS
    )
    coordinator.start()
    yield coordinator
    coordinator.consumer.close()
    for future in kafka_admin.delete_topics([topics.global_weights, topics.updates]).values():
        future.result(timeout=30)


def _send(coordinator: Coordinator, worker: str, run: str, value: float, samples: int) -> None:
    update = Envelope(UPDATE, 0, worker, [np.full(3, value, np.float32)], samples,
                      {"train": {"loss": value}}, extra={"run": run})  # fmt: skip
    publish(coordinator.producer, coordinator.topics.updates, update, {worker: KEYS[worker]})


def test_a_round_takes_this_runs_updates_weighted_by_samples(coordinator: Coordinator) -> None:
    _send(coordinator, "worker-a", coordinator.run_id, 1.0, 10)
    _send(coordinator, "worker-b", "an-earlier-run", 100.0, 1000)  # same topics, older job
    _send(coordinator, "worker-b", coordinator.run_id, 4.0, 30)
    result = coordinator.run_round(0, WEIGHTS, min_clients=2, timeout_s=60, plan={})
    np.testing.assert_allclose(result.weights[0], np.full(3, 3.25))
    assert result.clients == {"worker-a": 10, "worker-b": 30}
    assert result.train == {"loss": 3.25}


def test_a_round_short_of_min_clients_fails_naming_who_is_missing(
    coordinator: Coordinator,
) -> None:
    _send(coordinator, "worker-b", "an-earlier-run", 4.0, 30)
    _send(coordinator, "worker-a", coordinator.run_id, 1.0, 10)
    with pytest.raises(RoundFailedError, match=r"1 of the 2 updates .* missing \['worker-b'\]"):
        coordinator.run_round(0, WEIGHTS, min_clients=2, timeout_s=3, plan={})
