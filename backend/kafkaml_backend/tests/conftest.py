"""Fixtures of the runner tests: a live backend with the local runner over real HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from django.conf import settings
from django.contrib.auth.models import User
from pytest_django.live_server_helper import LiveServer

from backend.apps.mlmodels.executor import validate_model_code
from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import (
    _alive,
    cancel_restarts,
    pending_restarts,
    watched_pids,
)
from backend.kafkaml_backend.tests.drills import PARTITIONS
from backend.testing import PYTORCH_MODEL, finished_result, stored_model
from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until

DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def torch_summary() -> dict[str, dict[str, Any]]:
    code = PYTORCH_MODEL
    return {
        "pytorch": validate_model_code(
            framework=code.framework, imports=code.imports, code=code.code, distributed=False
        )
    }


@dataclass
class LiveBackend:
    """The backend the jobs reach over HTTP, and its control topic."""

    server: LiveServer
    control_topic: str


@pytest.fixture
def live_backend(
    transactional_db: None,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveBackend]:
    """A live backend with the local runner and a fresh control topic."""
    server = LiveServer("127.0.0.1:0")
    topic = new_topic()
    update = {
        "runner": "local",
        "backend_url": server.url,
        "control_topic": topic,
        # Crash loops show within seconds: restarts after 0.5 s, 1 s; the third crash fails.
        "restart_backoff_s": 0.5,
        "crash_loop_limit": 3,
    }
    monkeypatch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update=update))
    monkeypatch.setenv("KAFKAML_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("KAFKAML_TRAINING_SEED", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    backend = LiveBackend(server, topic)
    yield backend
    end_local_jobs()
    server.stop()
    keep = os.environ.get("KAFKAML_DRILL_KEEP_LOGS")
    if keep:  # the job logs outlive the test's data dir, for a person to read
        shutil.copytree(Path(settings.KAFKAML.data_dir) / "logs", Path(keep) / topic,
                        dirs_exist_ok=True)  # fmt: skip


@pytest.fixture
def local_backend(live_backend: LiveBackend) -> str:
    """A live backend with the local runner (`live_backend`); its control topic."""
    return live_backend.control_topic


def end_local_jobs() -> None:
    """Kill every job process the rows know, with no restart pending, and wait for the
    watchers to record the exits (they write to the database, which the test then drops).
    Again until a round finds nothing: a restart under way may start a replica meanwhile."""

    def nothing_left() -> bool:
        JobProcess.objects.filter(ended_at__isnull=True).update(stop_requested=True)
        cancel_restarts()
        rows = JobProcess.objects.filter(ended_at__isnull=True)
        alive = [row.pid for row in rows if _alive(row.pid)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        return not alive and not watched_pids() and not pending_restarts()

    # The watcher threads write to the database: they finish before the test's data goes.
    wait_until(nothing_left, "every job to end and its watcher to record it", DEADLINE_S)


@pytest.fixture
def trained(user: User, torch_summary: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    """A finished result with a real (untrained) PyTorch model; its id. No job trains it."""
    code = PYTORCH_MODEL
    artifact = get_framework("pytorch").build(code.imports, code.code).save()
    runner = settings.KAFKAML.runner
    with monkeypatch.context() as patch:
        patch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update={"runner": "none"}))
        model = stored_model(user, torch_summary, "pytorch")
        result = finished_result(user, model, artifact)
    assert settings.KAFKAML.runner == runner
    return result.pk


@pytest.fixture
def streams(new_topic: Callable[..., str]) -> tuple[str, str]:
    return new_topic(partitions=PARTITIONS), new_topic(partitions=PARTITIONS)


@pytest.fixture
def answers_consumer(
    consumer_factory: Callable[..., Consumer], group_id: str
) -> Iterator[Consumer]:
    yield consumer_factory(group_id, isolation_level="read_committed", auto_offset_reset="earliest")
