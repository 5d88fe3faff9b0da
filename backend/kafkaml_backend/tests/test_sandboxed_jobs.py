"""Hostile model code in a real local training job (the local runner, a live backend over HTTP,
the real broker): the job runs in the sandbox, so it sees neither the backend's data dir and
database nor the backend's process, and nothing it starts outlives it.

A job has a network namespace of its own whose only ways out are the brokers and the job API
(`kafkaml.egress`): the job API's port on 127.0.0.1 answers, another port the test listens on at
the same address does not, nor does an address off the machine or DNS; see docs/security.md.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from pytest_django.live_server_helper import LiveServer
from rest_framework.test import APIClient

from backend.apps.mlmodels.services import model_create_validated
from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import _alive, watched_pids
from backend.testing import PYTORCH_MODEL
from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings
from kafkaml.settings import PROJECT_ROOT
from kafkaml.testing import wait_until
from kafkaml.tests import hostile

DEADLINE_S = 180.0


@pytest.fixture
def local_backend(
    transactional_db: None,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, LiveServer]]:
    """A live backend with the local runner and a fresh control topic."""
    server = LiveServer("127.0.0.1:0")
    topic = new_topic()
    update = {"runner": "local", "backend_url": server.url, "control_topic": topic}
    monkeypatch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update=update))
    monkeypatch.setenv("KAFKAML_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("KAFKAML_SANDBOX_MAX_FILE_BYTES", str(64 * 1024 * 1024))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    yield topic, server
    for row in JobProcess.objects.filter(ended_at__isnull=True):
        if _alive(row.pid):
            os.killpg(row.pid, signal.SIGKILL)
    wait_until(lambda: not watched_pids(), "the watchers to record every exit", timeout_s=60)
    server.stop()


def test_hostile_model_code_in_a_training_job_sees_nothing_of_the_backend(
    api: APIClient,
    user: User,
    summaries: dict[str, dict[str, Any]],
    local_backend: tuple[str, LiveServer],
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control_topic, server = local_backend
    data_dir = Path(settings.KAFKAML.data_dir)
    (data_dir / "secret_key").write_text("the-backend-secret")
    database = Path(settings.DATABASES["default"]["NAME"])
    secrets = [data_dir / "secret_key", *([database] if database.exists() else [])]
    outside = [PROJECT_ROOT / "model_training" / "hostile-written", data_dir / "x"]
    port = int(server.url.rsplit(":", 1)[1])
    other = socket.create_server(("127.0.0.1", 0))  # any other service of this machine
    target = hostile.targets(data_dir, port, outside, secrets, other.getsockname()[1])
    model = model_create_validated(
        owner=user,
        name="hostile",
        framework="pytorch",
        imports=PYTORCH_MODEL.imports,
        code=hostile.probe_code(target) + PYTORCH_MODEL.code,
        distributed=False,
        summary=summaries["pytorch"],
    )
    deployment_id, result_id = _deploy(api, model.pk)
    _send_data(kafka_settings, control_topic, deployment_id, new_topic())

    with other:
        failed = wait_until(
            lambda: (r := api.get(f"/api/results/{result_id}").json())["status"] == "failed" and r,
            "the hostile job's result to fail",
            timeout_s=DEADLINE_S,
        )
    logs = api.get(f"/api/results/{result_id}/logs").json()["logs"]
    report = hostile.report_from(failed["error"] + "\n" + logs)
    hostile.assert_contained(report, network="routes")
    assert report["connect_loopback"][0] == "ok"  # the job API
    broker = kafka_settings.bootstrap_servers.split(",")[0].rsplit(":", 1)[1]
    assert f":{int(broker):04X}" in report["tcp_listening"][1]  # the broker's route
    for path in outside:
        assert not path.exists(), f"the job wrote {path}"
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def _deploy(api: APIClient, model_id: int) -> tuple[int, int]:
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model_id]}, format="json"
    ).json()
    response = api.post(
        "/api/deployments",
        {"configuration_id": configuration["id"], "batch_size": 32, "fit_kwargs": {"epochs": 1}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    deployment_id = response.json()["id"]
    results = api.get(f"/api/deployments/{deployment_id}/results").json()
    return deployment_id, results[0]["id"]


def _send_data(kafka: KafkaSettings, control_topic: str, deployment_id: int, data: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=100).astype(np.uint8)
    x = rng.normal(0, 1, size=(100, 4)).astype(np.float32)
    sink = RawSink(
        kafka.bootstrap_servers, data, deployment_id, control_topic=control_topic,
        kafka_settings=kafka, progress=False, test_rate=0.2,
    )  # fmt: skip
    sink.send_many(x, y)
    sink.close()
