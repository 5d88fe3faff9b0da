"""What the federated tests share: non-IID datasets on the real broker, workers and the
coordinator as real processes, and readers of the exchange topics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from kafkaml.federated import signing_key
from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, ensure_topics
from kafkaml.testing import wait_until
from model_training.federated.exchange import (
    Assembler,
    Envelope,
    ExchangeTopics,
    exchange_topics,
    verify_coordinator,
    verify_sender,
)
from model_training.tests.jobs import ROOT, announce, blobs, produce_samples, ranges_text

KEYS = {"worker-a": b"key-a", "worker-b": b"key-b", "worker-c": b"key-c"}
CREDENTIALS = ",".join(f"{name}:{key.decode()}" for name, key in KEYS.items())
SIGNING = {name: signing_key(key.decode()) for name, key in KEYS.items()}


def non_iid(sizes: dict[str, int], seed: int = 0) -> dict[str, tuple[Array, Array]]:
    """Per worker, blobs sorted by label and cut so each worker holds mostly one class."""
    x, y = blobs(sum(sizes.values()), seed)
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    parts, start = {}, 0
    for name, size in sizes.items():
        parts[name] = (x[start : start + size], y[start : start + size])
        start += size
    return parts


@dataclass
class Deployment:
    """A federated deployment id with its fresh exchange topics and the workers' datasets."""

    deployment_id: int
    topics: ExchangeTopics
    control_topic: str
    datasets: dict[str, int]
    data: dict[str, tuple[Array, Array]]


def federated_deployment(
    settings: KafkaSettings,
    admin: AdminClient,
    new_topic: Callable[..., str],
    sizes: dict[str, int],
) -> Iterator[Deployment]:
    """Announce each worker's non-IID share as its own dataset; yield; delete the topics."""
    deployment_id = random.randrange(10**6, 2**31)
    topics = exchange_topics(deployment_id)
    ensure_topics(admin, [topics.global_weights, topics.updates])
    control = new_topic(prefix="fed-control")
    data = non_iid(sizes)
    datasets = {}
    for index, (name, (x, y)) in enumerate(data.items()):
        ranges = produce_samples(settings, new_topic(prefix=f"fed-{name}"), x, y)
        datasets[name] = 100 + index
        announce(settings, control, datasets[name], ranges_text(ranges), validation_rate=0.2,
                 test_rate=0.0, total=len(x))  # fmt: skip
    yield Deployment(deployment_id, topics, control, datasets, data)
    for future in admin.delete_topics([topics.global_weights, topics.updates]).values():
        future.result(timeout=30)


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def start_worker(
    tmp_path: Path,
    settings: KafkaSettings,
    deployment: Deployment,
    name: str,
    *,
    cli: bool = False,
    **env: str,
) -> WorkerProcess:
    """`python -m model_training.federated` (or `kafkaml federated-worker`) for worker `name`,
    its log in tmp_path."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKAML_")},
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "KAFKAML_WORKER_ID": name,
        "KAFKAML_WORKER_CREDENTIAL": KEYS[name].decode(),
        "KAFKAML_FEDERATED_DEPLOYMENT_ID": str(deployment.deployment_id),
        "KAFKAML_DATASET_CONTROL_TOPIC": deployment.control_topic,
        "KAFKAML_DATASET_ID": str(deployment.datasets[name]),
        "KAFKAML_WORKER_IDLE_TIMEOUT_S": "120",
        "KAFKAML_FEDERATED_CHUNK_BYTES": "2048",
        "KAFKAML_WORKER_FRAMEWORK": "pytorch",  # the tiny models still travel in chunks
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env,
    }
    path = tmp_path / f"{name}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            *(("kafkaml.cli", "federated-worker") if cli else ("model_training.federated",)),
        ],
        cwd=ROOT,
        env=environment,
        stdout=path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return WorkerProcess(name, process, path)


def wait_ready(workers: list[WorkerProcess], timeout_s: float = 180) -> None:
    """Until every worker has read its data and imported its framework (or one has died)."""

    def ready() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"{worker.name} exited: {worker.log()}")
        return all(f"worker {w.name} ready" in w.log() for w in workers)

    wait_until(ready, "workers ready", timeout_s)


def exchanged(consumer: Consumer, topic: str) -> list[Any]:
    """Every record on an exchange topic, from its start to its end now."""
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    consumer.assign([TopicPartition(topic, 0, 0)])
    records: list[Any] = []
    while len(records) < high:
        wanted = high - len(records)  # consume returns as soon as it has this many
        records += [r for r in consumer.consume(wanted, timeout=5.0) if r.error() is None]
    return records


def updates_of(records: list[Any]) -> list[Envelope]:
    return Assembler(verify_sender(SIGNING)).feed(records)


def globals_of(records: list[Any]) -> list[Envelope]:
    return Assembler(verify_coordinator("worker-a", SIGNING["worker-a"])).feed(records)
