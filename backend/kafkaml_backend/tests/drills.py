"""What the fault drills share: a steady keyed load, reading the committed answers, serving a
result through the REST API and looking at its replicas.

Reduced sizes by default; `KAFKAML_DRILL_FULL=1` runs the sizes of issue 14.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer
from rest_framework.test import APIClient

from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import _alive
from kafkaml.kafka import KafkaSettings, make_producer

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
                self.sent += 1
            producer.poll(0)
            time.sleep(tick)
        assert producer.flush(DEADLINE_S) == 0


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
                keys[int(message.key())] += 1
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
    return api.get(f"/api/inferences/{inference_id}").json()


def all_ready(api: APIClient, inference_id: int, replicas: int) -> dict[str, Any] | None:
    now = inference(api, inference_id)
    ok = now["status"] == "running" and now["ready_replicas"] == replicas
    return now if ok and len(live_pids(inference_id)) == replicas else None


def serving(api: APIClient, inference_id: int, replicas: int) -> bool:
    """Whether every replica got as far as serving (its log says so)."""
    logs = api.get(f"/api/inferences/{inference_id}/logs").json()["logs"]
    return bool(logs.count(" serving model ") >= replicas)
