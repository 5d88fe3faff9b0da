"""Federated rounds on the real broker: a coordinator job and three workers as processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer

from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until
from model_training.federated.exchange import DONE, GLOBAL, UPDATE
from model_training.federated.tests.rounds import (
    CREDENTIALS,
    Deployment,
    WorkerProcess,
    exchanged,
    federated_deployment,
    globals_of,
    start_worker,
    updates_of,
    wait_ready,
)
from model_training.tests.jobs import JobProcess, spec_document, start_job

WORKERS = ("worker-a", "worker-b", "worker-c")


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


def _deployment(request: pytest.FixtureRequest, sizes: dict[str, int]) -> Iterator[Deployment]:
    settings = request.getfixturevalue("kafka_settings")
    admin = request.getfixturevalue("kafka_admin")
    yield from federated_deployment(settings, admin, request.getfixturevalue("new_topic"), sizes)


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    yield from _deployment(request, {"worker-a": 60, "worker-b": 90, "worker-c": 150})


@pytest.fixture
def slow_c(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    # worker-c holds enough data that its local epochs take seconds: it is killed while training
    yield from _deployment(request, {"worker-a": 60, "worker-b": 90, "worker-c": 30_000})


def _coordinator(
    tmp_path: Path,
    settings: KafkaSettings,
    deployment: Deployment,
    framework: str,
    **options: object,
) -> JobProcess:
    document = spec_document(
        framework, deployment.control_topic, deployment.deployment_id, mode="federated",
        federated={"local_epochs": 2, "round_timeout_s": 60, **options},
    )  # fmt: skip
    document["training"]["batch_size"] = 16
    return start_job(
        tmp_path, settings, document,
        KAFKAML_FEDERATED_CREDENTIALS=CREDENTIALS, KAFKAML_FEDERATED_CHUNK_BYTES="2048",
    )  # fmt: skip


def _weighted_mean(updates: list, index: int) -> list[np.ndarray]:  # type: ignore[type-arg]
    total = sum(update.samples for update in updates)
    return [
        sum(u.samples / total * u.weights[index].astype(np.float64) for u in updates)
        for index in range(len(updates[0].weights))
    ]


FULL = os.environ.get("KAFKAML_FEDERATED_FULL") == "1"


@pytest.mark.parametrize(
    "framework",
    [
        "pytorch",
        pytest.param(
            "tensorflow",
            marks=pytest.mark.skipif(not FULL, reason="KAFKAML_FEDERATED_FULL=1 runs Keras too"),
        ),
    ],
)
def test_round_aggregate_is_the_sample_weighted_mean_of_non_iid_workers(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    deployment: Deployment,
    workers: list[WorkerProcess],
    consumer_factory: Callable[..., Consumer],
) -> None:
    workers += [
        # worker-b runs as `kafkaml federated-worker`, the others as `python -m`
        start_worker(
            tmp_path,
            kafka_settings,
            deployment,
            name,
            cli=name == "worker-b",
            KAFKAML_WORKER_FRAMEWORK=framework,
        )
        for name in WORKERS
    ]
    wait_ready(workers)
    job = _coordinator(tmp_path, kafka_settings, deployment, framework, rounds=2, min_clients=3)
    assert job.wait() == 0, job.log()
    assert job.status()[-1] == "finished"
    for worker in workers:
        assert worker.process.wait(60) == 0, worker.log()

    update_records = exchanged(consumer_factory(), deployment.topics.updates)
    global_records = exchanged(consumer_factory(), deployment.topics.global_weights)
    updates = updates_of(update_records)
    published = globals_of(global_records)
    assert [(g.kind, g.round) for g in published] == [(GLOBAL, 0), (GLOBAL, 1), (DONE, -1)]
    for round_index, aggregate in ((0, published[1]), (1, published[2])):
        round_updates = [u for u in updates if u.kind == UPDATE and u.round == round_index]
        assert sorted(u.sender for u in round_updates) == list(WORKERS)
        assert sorted(u.samples for u in round_updates) == [48, 72, 120]  # 80 % of each
        expected = _weighted_mean(round_updates, 0)
        assert aggregate.weights is not None
        for got, want in zip(aggregate.weights, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the aggregate is not any single worker's weights: the non-IID updates differ
    first, second = (update.weights or [] for update in round_updates[:2])
    assert not np.allclose(first[0], second[0])
    epochs = job.epochs()
    assert [epoch["epoch"] for epoch in epochs] == [0, 1]
    assert "accuracy" in epochs[-1]["train"] and "loss" in epochs[-1]["validation"]
    _assert_no_sample_on_the_wire(deployment, update_records + global_records)


def _assert_no_sample_on_the_wire(deployment: Deployment, records: list[Any]) -> None:
    wire = b"".join(
        (r.value() or b"") + (r.key() or b"") + b"".join(v for _, v in r.headers() or [])
        for r in records
    )
    assert len(wire) > 10_000
    for x, _ in deployment.data.values():
        for sample in x:
            assert sample.tobytes() not in wire


def _kill_c_while_training(
    tmp_path: Path, settings: KafkaSettings, deployment: Deployment, min_clients: int
) -> tuple[JobProcess, list[WorkerProcess]]:
    workers = [start_worker(tmp_path, settings, deployment, name) for name in WORKERS]
    wait_ready(workers)
    job = _coordinator(
        tmp_path, settings, deployment, "pytorch", rounds=2, min_clients=min_clients,
        local_epochs=3, round_timeout_s=20,
    )  # fmt: skip
    wait_until(lambda: "round 0: training" in workers[2].log(), "worker-c training", 180)
    workers[2].kill()
    return job, workers


def test_a_worker_killed_mid_round_leaves_the_round_to_the_others_when_min_clients_allows(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    slow_c: Deployment,
    workers: list[WorkerProcess],
    consumer_factory: Callable[..., Consumer],
) -> None:
    job, started = _kill_c_while_training(tmp_path, kafka_settings, slow_c, min_clients=2)
    workers += started
    assert job.wait() == 0, job.log()
    assert job.status()[-1] == "finished"
    assert "aggregated without ['worker-c']" in job.log()
    updates = updates_of(exchanged(consumer_factory(), slow_c.topics.updates))
    assert "worker-c" not in {u.sender for u in updates}, "worker-c answered before the kill"
    assert [epoch["epoch"] for epoch in job.epochs()] == [0, 1]


def test_a_worker_killed_mid_round_fails_the_round_visibly_below_min_clients(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    slow_c: Deployment,
    workers: list[WorkerProcess],
) -> None:
    job, started = _kill_c_while_training(tmp_path, kafka_settings, slow_c, min_clients=3)
    workers += started
    assert job.wait() == 1, job.log()
    status, *reason_lines = job.status()
    assert status == "failed"
    reason = "\n".join(reason_lines)
    assert "RoundFailedError: round 0: 2 of the 3 updates needed arrived within 20 s" in reason
    assert "missing ['worker-c']" in reason
