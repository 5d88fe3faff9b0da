"""Supervision drills on the local runner: real inference replicas started through the REST
API, real faults (SIGKILL), the real broker; every input must be answered exactly once.

Reduced sizes by default; `KAFKAML_DRILL_FULL=1` runs the sizes of issue 14 (3 replicas,
6 partitions, a longer stream).
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from rest_framework.test import APIClient

from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import _alive
from backend.testing import PYTORCH_MODEL, finished_result, stored_model
from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.testing import wait_until

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


@pytest.fixture
def trained(user: AbstractBaseUser, torch_summary: dict[str, Any]) -> int:
    """A finished result with a real (untrained) PyTorch model; its id."""
    code = PYTORCH_MODEL
    artifact = get_framework("pytorch").build(code.imports, code.code).save()
    return finished_result(user, stored_model(user, torch_summary, "pytorch"), artifact).pk


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


@pytest.fixture
def streams(new_topic: Callable[..., str]) -> tuple[str, str]:
    return new_topic(partitions=PARTITIONS), new_topic(partitions=PARTITIONS)


@pytest.fixture
def answers_consumer(
    consumer_factory: Callable[..., Consumer], group_id: str
) -> Iterator[Consumer]:
    yield consumer_factory(group_id, isolation_level="read_committed", auto_offset_reset="earliest")


def test_replicas_killed_three_times_are_each_replaced_and_every_input_is_answered_once(
    api: APIClient,
    local_backend: str,
    trained: int,
    kafka_settings: KafkaSettings,
    streams: tuple[str, str],
    answers_consumer: Consumer,
) -> None:
    source, sink = streams
    inference_id = serve(api, trained, source, sink)
    wait_until(lambda: all_ready(api, inference_id, REPLICAS), "every replica", DEADLINE_S)
    load = Load(kafka_settings, source, RATE_PER_S).start()

    for kill in range(3):
        replica = kill % REPLICAS
        pid = live_pids(inference_id)[replica]
        time.sleep(2.0)  # under load: the replica is mid-stream when it dies
        os.killpg(pid, signal.SIGKILL)
        wait_until(
            lambda r=replica, p=pid: live_pids(inference_id).get(r, p) != p,  # type: ignore[misc]
            f"replica {replica} to be replaced",
            DEADLINE_S,
        )

    sent = load.finish()
    assert_answered_exactly_once(answered_keys(answers_consumer, sink, sent), sent)
    now = wait_until(lambda: all_ready(api, inference_id, REPLICAS), "every replica", DEADLINE_S)
    assert now["restarts"] == 3
    assert "killed by signal 9 (SIGKILL)" in now["last_exit_reason"]
    assert now["error"] == ""


def test_a_crash_looping_inference_fails_and_stop_scale_delete_and_stop_jobs_clean_it_up(
    api: APIClient, user: AbstractBaseUser, torch_summary: dict[str, Any], local_backend: str
) -> None:
    result = finished_result(user, stored_model(user, torch_summary, "pytorch"), b"not a model")
    inference_id = serve(api, result.pk, "in", "out", replicas=2)
    failed = wait_until(
        lambda: (i := inference(api, inference_id))["status"] == "failed" and i,
        "the inference to fail",
        DEADLINE_S,
    )
    assert "crash loop" in failed["error"]
    wait_until(lambda: not live_pids(inference_id), "no replica left", DEADLINE_S)

    url = f"/api/inferences/{inference_id}"
    assert api.post(f"{url}/stop").json()["status"] == "failed"
    assert api.post(f"{url}/scale", {"replicas": 3}, format="json").json()["replicas"] == 3
    assert not live_pids(inference_id)
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404

    out = io.StringIO()
    call_command("stop_jobs", stdout=out)  # raises (make stop exits non-zero) on any error
    assert "job processes stopped: 0" in out.getvalue()


def test_deleting_a_running_inference_ends_its_replicas_and_stop_jobs_still_succeeds(
    api: APIClient, local_backend: str, trained: int, streams: tuple[str, str]
) -> None:
    source, sink = streams
    inference_id = serve(api, trained, source, sink, replicas=2)
    pids = wait_until(lambda: all_ready(api, inference_id, 2) and live_pids(inference_id),
                      "two replicas", DEADLINE_S)  # fmt: skip

    assert api.delete(f"/api/inferences/{inference_id}").status_code == 204
    wait_until(lambda: not any(_alive(pid) for pid in pids.values()), "no replica", DEADLINE_S)
    call_command("stop_jobs", stdout=io.StringIO())
