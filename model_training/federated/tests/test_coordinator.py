"""The coordinator in-process on the real broker: which updates a round takes."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient

from kafkaml.kafka import KafkaSettings, ensure_topics, make_consumer, make_producer
from kafkaml.testing import wait_until
from model_training.federated.coordinator import Coordinator, RoundFailedError
from model_training.federated.exchange import (
    GLOBAL,
    UPDATE,
    Assembler,
    Envelope,
    exchange_topics,
    publish,
    verify_coordinator,
)
from model_training.federated.tests.rounds import exchanged

KEYS = {"worker-a": b"key-a", "worker-b": b"key-b"}
WEIGHTS = [np.zeros(3, np.float32)]


@pytest.fixture
def members() -> dict[str, bytes]:
    """The backend's list of the deployment's workers, as a test changes it."""
    return dict(KEYS)


@pytest.fixture
def coordinator(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, members: dict[str, bytes]
) -> Iterator[Coordinator]:
    topics = exchange_topics(random.randrange(10**6, 2**31), prefix="test-federated")
    ensure_topics(kafka_admin, [topics.global_weights, topics.updates])
    coordinator = Coordinator(
        make_producer(kafka_settings), make_consumer(kafka_settings), topics,
        lambda: dict(members), refresh_s=0.2,
    )  # fmt: skip
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


def test_a_revoked_workers_update_is_refused_and_logged(
    coordinator: Coordinator, members: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    del members["worker-b"]  # revoked in the backend
    _send(coordinator, "worker-b", coordinator.run_id, 4.0, 30)
    _send(coordinator, "worker-a", coordinator.run_id, 1.0, 10)
    result = coordinator.run_round(0, WEIGHTS, min_clients=1, timeout_s=60, plan={})
    assert result.clients == {"worker-a": 10}
    assert ("worker-b", "unknown worker 'worker-b'") in coordinator.assembler.refused
    assert "refused an exchange message from 'worker-b'" in caplog.text


def test_a_worker_that_joins_mid_round_is_sent_the_round_and_counted(
    coordinator: Coordinator, members: dict[str, bytes], consumer_factory: Any
) -> None:
    del members["worker-b"]  # not joined yet
    _send(coordinator, "worker-a", coordinator.run_id, 1.0, 10)

    def join_later() -> None:
        wait_until(lambda: bool(coordinator.credentials), "round 0 to start", 60)
        members["worker-b"] = KEYS["worker-b"]
        wait_until(lambda: "worker-b" in coordinator.credentials, "b to be known", 60)
        _send(coordinator, "worker-b", coordinator.run_id, 4.0, 30)

    joiner = threading.Thread(target=join_later)
    joiner.start()
    result = coordinator.run_round(0, WEIGHTS, min_clients=2, timeout_s=60, plan={})
    joiner.join()
    assert result.clients == {"worker-a": 10, "worker-b": 30}
    records = exchanged(consumer_factory(), coordinator.topics.global_weights)
    for_b = Assembler(verify_coordinator("worker-b", KEYS["worker-b"])).feed(records)
    assert [(g.kind, g.round) for g in for_b] == [(GLOBAL, 0)], "republished, signed for b"
