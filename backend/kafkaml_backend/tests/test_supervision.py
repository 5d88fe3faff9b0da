"""Supervision drills on the local runner: real inference replicas started through the REST
API, real faults (SIGKILL), the real broker; every input must be answered exactly once.

Reduced sizes by default; `KAFKAML_DRILL_FULL=1` runs the sizes of issue 14 (3 replicas,
6 partitions, a faster stream).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from backend.kafkaml_backend.runners.local import _alive
from backend.kafkaml_backend.tests.drills import (
    DEADLINE_S,
    RATE_PER_S,
    REPLICAS,
    Load,
    all_ready,
    answered_keys,
    assert_answered_exactly_once,
    inference,
    live_pids,
    serve,
)
from backend.testing import finished_result, stored_model
from kafkaml.kafka import KafkaSettings
from kafkaml.sandbox import _descendants, _running
from kafkaml.testing import WaitTimeout, wait_until

# Fault drills of job processes: run once, on SQLite (their database work is what the API
# tests run on both databases).
pytestmark = pytest.mark.drill


def test_replicas_killed_three_times_are_each_replaced_leaving_nothing_and_answer_each_input_once(
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
        tree = [pid, *_descendants(pid)]
        time.sleep(2.0)  # under load: the replica is mid-stream when it dies
        if kill == 1:  # its outer bwrap alone: what runs inside must not outlive it
            os.kill(_outer_bwrap(tree), signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)
        wait_until(
            lambda r=replica, p=pid: live_pids(inference_id).get(r, p) != p,  # type: ignore[misc]
            f"replica {replica} to be replaced",
            DEADLINE_S,
        )
        with contextlib.suppress(WaitTimeout):
            wait_until(partial(_nothing_left, tree), "no process of it left", 30.0)
        assert not _survivors(tree)

    sent = load.finish()
    assert_answered_exactly_once(answered_keys(answers_consumer, sink, sent), sent)
    now = wait_until(lambda: all_ready(api, inference_id, REPLICAS), "every replica", DEADLINE_S)
    assert now["restarts"] == 3
    assert "killed by signal 9 (SIGKILL)" in now["last_exit_reason"]
    assert now["error"] == ""


def _outer_bwrap(tree: list[int]) -> int:
    """The first bwrap of a replica's process tree (parents first)."""
    return next(pid for pid in tree if _command(pid).startswith("bwrap "))


def _nothing_left(tree: list[int]) -> bool:
    return not _survivors(tree)


def _survivors(tree: list[int]) -> list[tuple[int, str]]:
    return [(pid, _command(pid)) for pid in tree if _running(pid)]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return ""


def test_a_crash_looping_inference_fails_and_stop_scale_delete_and_stop_jobs_clean_it_up(
    api: APIClient,
    user: User,
    torch_summary: dict[str, Any],
    local_backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patch:  # no training job for the result: stop_jobs counts
        patch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update={"runner": "none"}))
        model = stored_model(user, torch_summary, "pytorch")
        result = finished_result(user, model, b"not a model")
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
    pids = wait_until(lambda: bool(all_ready(api, inference_id, 2)) and live_pids(inference_id),
                      "two replicas", DEADLINE_S)  # fmt: skip

    assert api.delete(f"/api/inferences/{inference_id}").status_code == 204
    wait_until(lambda: not any(_alive(pid) for pid in pids.values()), "no replica", DEADLINE_S)
    call_command("stop_jobs", stdout=io.StringIO())
