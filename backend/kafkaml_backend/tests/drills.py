"""What the fault drills share: a steady keyed load, reading the committed answers, serving a
result through the REST API and looking at its replicas.

Reduced sizes by default; `KAFKAML_DRILL_FULL=1` runs the sizes of issue 14.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rest_framework.test import APIClient

from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import _alive
from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer

FULL = os.environ.get("KAFKAML_DRILL_FULL") == "1"
REPLICAS = 3 if FULL else 2
PARTITIONS = 6 if FULL else 3
RATE_PER_S = 500 if FULL else 200
DEADLINE_S = 180.0


@dataclass
class Load:
    """A steady stream of RAW samples keyed 0, 1, 2, ... on a thread, until stopped."""

    kafka: KafkaSettings
    topic: str
    rate_per_s: int
    sent: int = 0
    sent_at: list[float] = field(default_factory=list)  # monotonic send time, by key
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Load:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def finish(self) -> int:
        """Stop producing; the number of records sent (all delivered)."""
        self.stop.set()
        assert self.thread is not None
        self.thread.join(DEADLINE_S)
        return self.sent

    def _run(self) -> None:
        producer = make_producer(self.kafka)
        value = np.zeros(4, dtype=np.float32).tobytes()
        tick = 0.05
        per_tick = max(1, int(self.rate_per_s * tick))
        while not self.stop.is_set():
            for _ in range(per_tick):
                producer.produce(self.topic, value, str(self.sent).encode())
                self.sent_at.append(time.monotonic())
                self.sent += 1
            producer.poll(0)
            time.sleep(tick)
        assert producer.flush(DEADLINE_S) == 0


@dataclass
class AnswerClock:
    """When each answer on `topic` first became readable (`read_committed`, monotonic time),
    by key, on a thread from `start()` to `finish()`. It reads every partition from the
    beginning without joining a group, so no rebalance delays what it sees."""

    kafka: KafkaSettings
    topic: str
    seen_at: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> AnswerClock:
        consumer = make_consumer(self.kafka, None, isolation_level="read_committed",
                                 fetch_wait_max_ms=10)  # fmt: skip
        partitions = consumer.list_topics(self.topic, 10).topics[self.topic].partitions
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self.thread = threading.Thread(target=self._run, args=(consumer,), daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(DEADLINE_S)

    def latencies(self, sent_at: list[float], start: float, end: float) -> Latencies:
        """Input sent -> answer readable, for the inputs sent in [start, end)."""
        keys = [key for key, at in enumerate(sent_at) if start <= at < end]
        answered = [self.seen_at[key] - sent_at[key] for key in keys if key in self.seen_at]
        return Latencies(np.array(answered), unanswered=len(keys) - len(answered))

    def _run(self, consumer: Consumer) -> None:
        while not self.stop.is_set():
            for message in consumer.consume(10_000, 0.1):
                if message.error() is None:
                    self.seen_at.setdefault(int(cast(bytes, message.key())), time.monotonic())
        consumer.close()


@dataclass
class Latencies:
    """Answer latencies of one window, in seconds."""

    seconds: np.ndarray[Any, np.dtype[np.float64]]
    unanswered: int

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q)) if len(self.seconds) else float("inf")

    def __str__(self) -> str:
        p50, p99 = self.percentile(50), self.percentile(99)
        worst = float(self.seconds.max()) if len(self.seconds) else float("inf")
        return (f"{len(self.seconds)} answers, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                f"max {worst * 1000:.0f} ms, {self.unanswered} unanswered")  # fmt: skip


def answered_keys(consumer: Consumer, topic: str, expected: int) -> Counter[int]:
    """The keys of the committed answers on `topic`, read until `expected` distinct ones came
    and a few quiet seconds passed (a duplicate would show in that time)."""
    consumer.subscribe([topic])
    keys: Counter[int] = Counter()
    deadline = time.monotonic() + DEADLINE_S
    quiet_until = None
    while time.monotonic() < deadline:
        for message in consumer.consume(10_000, 0.5):
            if message.error() is None:
                keys[int(cast(bytes, message.key()))] += 1
        if len(keys) >= expected:
            quiet_until = quiet_until or time.monotonic() + 5.0
            if time.monotonic() > quiet_until:
                break
    return keys


def assert_answered_exactly_once(keys: Counter[int], sent: int) -> None:
    missing = sent - len([k for k in keys if k < sent])
    twice = {key: count for key, count in keys.items() if count > 1}
    assert (missing, twice) == (0, {}), f"{missing} of {sent} unanswered; answered twice: {twice}"


def serve(api: APIClient, result_id: int, source: str, sink: str, replicas: int = REPLICAS) -> int:
    body = {
        "result_id": result_id,
        "replicas": replicas,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": source,
        "output_topic": sink,
    }
    response = api.post("/api/inferences", body, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def live_pids(inference_id: int) -> dict[int, int]:
    """replica -> pid of the replicas whose process runs."""
    rows = JobProcess.objects.filter(kind="inference", object_id=inference_id, ended_at=None)
    return {row.replica: row.pid for row in rows if _alive(row.pid)}


def inference(api: APIClient, inference_id: int) -> dict[str, Any]:
    return cast("dict[str, Any]", api.get(f"/api/inferences/{inference_id}").json())


def all_ready(api: APIClient, inference_id: int, replicas: int) -> dict[str, Any] | None:
    now = inference(api, inference_id)
    ok = now["status"] == "running" and now["ready_replicas"] == replicas
    return now if ok and len(live_pids(inference_id)) == replicas else None


def serving(api: APIClient, inference_id: int, replicas: int) -> bool:
    """Whether every replica got as far as serving (its log says so)."""
    logs = api.get(f"/api/inferences/{inference_id}/logs").json()["logs"]
    return bool(logs.count(" serving model ") >= replicas)


def deploy(api: APIClient, model_id: int, epochs: int) -> tuple[int, int]:
    """A deployment of one model trained for `epochs`; (deployment id, result id)."""
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model_id]}, format="json"
    ).json()
    response = api.post(
        "/api/deployments",
        {"configuration_id": configuration["id"], "batch_size": 32,
         "fit_kwargs": {"epochs": epochs}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    results = api.get(f"/api/deployments/{response.json()['id']}/results").json()
    return int(response.json()["id"]), int(results[0]["id"])


def send_training_data(kafka: KafkaSettings, control_topic: str, deployment_id: int,
                       topic: str) -> None:  # fmt: skip
    """600 labelled samples of three blobs and their control message."""
    rng = np.random.default_rng(0)
    centers = np.random.default_rng(42).normal(0, 3, size=(3, 4))
    y = rng.integers(0, 3, size=600).astype(np.uint8)
    x = (centers[y] + rng.normal(0, 1, size=(600, 4))).astype(np.float32)
    sink = RawSink(kafka.bootstrap_servers, topic, deployment_id, control_topic=control_topic,
                   kafka_settings=kafka, progress=False, test_rate=0.2)  # fmt: skip
    sink.send_many(x, y)
    sink.close()


class BackendProxy:
    """A TCP relay in front of the backend: jobs that call its `url` lose the backend on `stop`
    (connections reset, then refused, as when the backend process dies) and find it again on
    `start`, on the same address."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        assert self._listener is not None
        self._listener.close()
        with self._lock:
            for open_socket in self._sockets:
                open_socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                open_socket.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
