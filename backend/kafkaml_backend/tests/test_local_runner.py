"""The local runner through the API: real training job processes against a live backend over
HTTP, the real broker, the real database; jobs finish, die, stop, and survive a restart."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from confluent_kafka import Consumer
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient

from backend.apps.processes.models import JobProcess
from backend.kafkaml_backend.runners.local import (
    ENDED_UNWATCHED,
    _alive,
    reconcile,
)
from backend.testing import deployed, finished_result, stored_model
from kafkaml.datasources import RawSink
from kafkaml.egress import Endpoint
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.sandbox import Sandbox, _descendants, _running, carries
from kafkaml.testing import wait_until

DEADLINE_S = 120.0


def _deploy(api: APIClient, user: User, summary: dict[str, Any]) -> dict[str, Any]:
    model = stored_model(user, summary, "pytorch")
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model.pk]}, format="json"
    ).json()
    response = api.post(
        "/api/deployments",
        {"configuration_id": configuration["id"], "batch_size": 32, "fit_kwargs": {"epochs": 2}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    results = api.get(f"/api/deployments/{response.json()['id']}/results").json()
    return {"deployment": response.json(), "result": results[0]}


def _result(api: APIClient, result_id: int) -> dict[str, Any]:
    return cast("dict[str, Any]", api.get(f"/api/results/{result_id}").json())


def _exit_row(pid: int) -> JobProcess | None:
    """The row of process `pid` once its watcher recorded the exit."""
    return JobProcess.objects.filter(pid=pid, ended_at__isnull=False).first()


def _job_pid(result_id: int) -> int:
    def live_pid() -> int | None:
        row = JobProcess.objects.filter(kind="result", object_id=result_id).first()
        return row.pid if row is not None and _alive(row.pid) else None

    return int(wait_until(live_pid, "the job process", timeout_s=DEADLINE_S))


def _send_data(kafka: KafkaSettings, control_topic: str, deployment_id: int, data: str) -> None:
    rng = np.random.default_rng(0)
    centers = np.random.default_rng(42).normal(0, 3, size=(3, 4))
    y = rng.integers(0, 3, size=600).astype(np.uint8)
    x = (centers[y] + rng.normal(0, 1, size=(600, 4))).astype(np.float32)
    sink = RawSink(
        kafka.bootstrap_servers, data, deployment_id, control_topic=control_topic,
        kafka_settings=kafka, progress=False, test_rate=0.2,
    )  # fmt: skip
    sink.send_many(x, y)
    sink.close()


def test_a_deployed_job_trains_to_finished_survives_a_restart_and_its_model_serves(
    api: APIClient,
    user: User,
    torch_summary: dict[str, Any],
    local_backend: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
    group_id: str,
) -> None:
    deployed = _deploy(api, user, torch_summary)
    result_id = deployed["result"]["id"]
    pid = _job_pid(result_id)

    # A fresh backend (watching nothing) finds the live job and leaves it running and tracked.
    assert reconcile(skip_watched=False) == []
    assert _alive(pid)
    assert api.get(f"/api/results/{result_id}/logs").json()["state"] == "running"

    _send_data(kafka_settings, local_backend, deployed["deployment"]["id"], new_topic())
    ended = wait_until(
        lambda: (r := _result(api, result_id))["status"] in ("finished", "failed") and r,
        "the result to end",
        timeout_s=DEADLINE_S,
    )
    assert ended["status"] == "finished", api.get(f"/api/results/{result_id}/logs").json()
    row = wait_until(lambda: _exit_row(pid), "the exit to be recorded", timeout_s=DEADLINE_S)
    assert row.exit_code == 0
    logs = api.get(f"/api/results/{result_id}/logs").json()
    assert logs["state"] == "exited"
    assert "training finished" in logs["logs"]  # the last line, written after the report

    _serve_scale_and_stop(api, result_id, kafka_settings, new_topic, consumer_factory, group_id)


def _serve_scale_and_stop(
    api: APIClient,
    result_id: int,
    kafka: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
    group_id: str,
) -> None:
    source, sink = new_topic(), new_topic()
    body = {
        "result_id": result_id,
        "replicas": 2,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": source,
        "output_topic": sink,
    }
    response = api.post("/api/inferences", body, format="json")
    assert response.status_code == 201, response.json()
    inference_id = response.json()["id"]
    wait_until(lambda: _live_replicas(inference_id) == [0, 1], "two replicas", timeout_s=DEADLINE_S)

    # Records keep coming until one prediction is out: a replica may join after the first one.
    producer = make_producer(kafka)
    consumer = consumer_factory(group_id)
    consumer.subscribe([sink])

    def prediction() -> Any:
        producer.produce(source, np.zeros(4, dtype=np.float32).tobytes())
        producer.flush(10)
        message = consumer.poll(1.0)
        return message if message is not None and message.error() is None else None

    assert wait_until(prediction, "a prediction", timeout_s=DEADLINE_S).value()

    assert api.post(f"/api/inferences/{inference_id}/scale", {"replicas": 1}).status_code == 200
    wait_until(
        lambda: _live_replicas(inference_id) == [0], "replica 1 to end", timeout_s=DEADLINE_S
    )

    assert api.post(f"/api/inferences/{inference_id}/stop").status_code == 200
    wait_until(
        lambda: _live_replicas(inference_id) == [], "every replica to end", timeout_s=DEADLINE_S
    )
    assert api.get(f"/api/inferences/{inference_id}").json()["status"] == "stopped"


def _live_replicas(inference_id: int) -> list[int]:
    rows = JobProcess.objects.filter(kind="inference", object_id=inference_id)
    return sorted(row.replica for row in rows if row.ended_at is None and _alive(row.pid))


def test_a_killed_job_leaves_its_result_failed_with_the_exit_reason(
    api: APIClient, user: User, torch_summary: dict[str, Any], local_backend: str
) -> None:
    result_id = _deploy(api, user, torch_summary)["result"]["id"]
    os.killpg(_job_pid(result_id), signal.SIGKILL)

    failed = wait_until(
        lambda: (r := _result(api, result_id))["status"] == "failed" and r,
        "the result to fail",
        timeout_s=DEADLINE_S,
    )
    assert "killed by signal 9 (SIGKILL)" in failed["error"]


def test_a_stop_through_the_api_ends_the_job_process_and_the_result_is_stopped(
    api: APIClient, user: User, torch_summary: dict[str, Any], local_backend: str
) -> None:
    result_id = _deploy(api, user, torch_summary)["result"]["id"]
    pid = _job_pid(result_id)

    assert api.post(f"/api/results/{result_id}/stop").status_code == 200
    wait_until(lambda: not _alive(pid), "the job process to end", timeout_s=DEADLINE_S)
    row = wait_until(lambda: _exit_row(pid), "the exit to be recorded", timeout_s=DEADLINE_S)
    assert row.stop_requested
    assert _result(api, result_id)["status"] == "stopped"


def test_a_job_that_ended_while_no_backend_watched_fails_its_result_with_its_log(
    transactional_db: None,
    user: User,
    torch_summary: dict[str, Any],
    tmp_path: Path,
) -> None:
    # A result whose job a previous backend started (runner none here: nothing starts it) ...
    deployment = deployed(user, [stored_model(user, torch_summary, "pytorch")], mode="classic")
    [result] = deployment.results.all()
    # ... and that job ended before this backend came up (no settings: it fails at once).
    log_path = tmp_path / "job.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKAML_")}
    with log_path.open("wb") as log:
        job = subprocess.Popen(
            [sys.executable, "-m", "model_training"], env=env, stdout=log, stderr=log
        )
    job.wait()
    JobProcess.objects.create(
        kind="result", object_id=result.pk, pid=job.pid, log_path=str(log_path)
    )

    out = io.StringIO()
    call_command("reconcile_jobs", stdout=out)
    assert out.getvalue().split() == ["ended:", str(job.pid)]
    result.refresh_from_db()
    assert result.status == "failed"
    assert ENDED_UNWATCHED in result.error
    assert log_path.read_text().strip().splitlines()[-1] in result.error
    assert reconcile() == []


Starter = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def start_group() -> Iterator[Starter]:
    """Starts a command in a process group of its own, as the runner starts a job; each
    group is SIGKILLed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(argv, start_new_session=True, **options))
        return started[-1]

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_reconciler_kills_what_a_job_left_when_its_first_process_died_unwatched(
    transactional_db: None, tmp_path: Path, start_group: Starter
) -> None:
    """The backend was down when the job's first process died alone; the rest of its sandbox
    runs on, reparented. Here the launch's root bwrap leads the group (the host's network), so
    nothing ties the stages below it to it."""
    code = f"import time; time.sleep({900 + os.getpid() % 1000}.125)"
    launch = Sandbox(job_network="host").launch(
        [sys.executable, "-c", code], env={}, cwd=tmp_path, network=[Endpoint("127.0.0.1", 9)],
        die_with_parent=False,
    )  # fmt: skip
    job = start_group(launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds)
    launch.close()
    JobProcess.objects.create(
        kind="inference", object_id=0, pid=job.pid, launch_marker=launch.marker, log_path="-"
    )
    code_pid = wait_until(lambda: _running_code(job.pid, code), "the job's code to start")
    job.kill()
    job.wait()  # reaped, as init reaps it once its backend is gone: the pid is free for reuse
    assert _running(code_pid)

    assert reconcile(skip_watched=False) == [job.pid]

    assert not _running(code_pid)
    assert not [pid for pid in _descendants(1) if carries(pid, launch.marker)]
    assert JobProcess.objects.get(pid=job.pid).end_reason == ENDED_UNWATCHED


def _running_code(pid: int, code: str) -> int | None:
    """The pid of the descendant of `pid` that runs `python -c code`, if one does."""
    tail = [code.encode(), b""]
    for child in _descendants(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[-2:] == tail:
                return child
    return None


def test_the_reconciler_kills_no_process_that_reuses_a_jobs_pid(
    transactional_db: None, start_group: Starter
) -> None:
    """A job's first process ended unwatched and its pid now leads another process group, of a
    process that even looks like a job: the reconciler records the job's end and kills none of
    that group."""
    code = "import subprocess, sys, time; subprocess.Popen(['sleep', '600']); time.sleep(600)"
    other = start_group([sys.executable, "-c", code, "-m", "model_inference"])
    child = wait_until(lambda: _descendants(other.pid), "the other process's child")[0]
    JobProcess.objects.create(
        kind="inference", object_id=0, pid=other.pid, launch_marker=uuid.uuid4().hex, log_path="-"
    )

    assert reconcile(skip_watched=False) == [other.pid]

    assert _running(other.pid) and _running(child)
    assert JobProcess.objects.get(pid=other.pid).end_reason == ENDED_UNWATCHED
    assert reconcile(skip_watched=False) == []


def test_replicas_that_cannot_load_their_model_leave_the_inference_failed_with_the_log(
    api: APIClient, user: User, torch_summary: dict[str, Any], local_backend: str
) -> None:
    result = finished_result(user, stored_model(user, torch_summary, "pytorch"), b"not a model")
    body = {
        "result_id": result.pk,
        "replicas": 2,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": "in",
        "output_topic": "out",
    }
    inference_id = api.post("/api/inferences", body, format="json").json()["id"]

    failed = wait_until(
        lambda: (
            (i := api.get(f"/api/inferences/{inference_id}").json())["status"] == "failed" and i
        ),
        "the inference to fail",
        timeout_s=DEADLINE_S,
    )
    assert "crash loop" in failed["error"]
    assert "the job process exited with code 1" in failed["error"]
    assert "inference failed" in failed["error"]
    assert failed["restarts"] >= 2
    assert set(
        JobProcess.objects.filter(kind="inference", object_id=inference_id).values_list(
            "replica", flat=True
        )
    ) == {0, 1}


def test_a_job_that_cannot_start_fails_its_result_with_the_reason(
    transactional_db: None,
    user: User,
    torch_summary: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data dir should be")
    update = {"runner": "local", "data_dir": not_a_folder}
    monkeypatch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update=update))

    deployment = deployed(user, [stored_model(user, torch_summary, "pytorch")], mode="classic")

    [result] = deployment.results.all()
    assert result.status == "failed"
    assert result.error.startswith("the job process did not start:")
    assert not JobProcess.objects.exists()


def test_stopping_the_local_stack_ends_every_job_and_says_so_on_its_result(
    api: APIClient, user: User, torch_summary: dict[str, Any], local_backend: str
) -> None:
    result_id = _deploy(api, user, torch_summary)["result"]["id"]
    pid = _job_pid(result_id)

    call_command("stop_jobs", stdout=io.StringIO())

    assert not _alive(pid)
    failed = _result(api, result_id)
    assert failed["status"] == "failed"
    assert "the local stack was stopped" in failed["error"]
