"""The local stack's backend (gunicorn as `kafkaml local up` runs it) keeps answering while
validations run: a validation holds one thread, not a worker."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kafkaml import local
from kafkaml.testing import wait_until

PASSWORD = "validation-test"
ENDLESS = "while True:\n    pass\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[str]:
    """The local stack's backend program alone (no broker needed), on a fresh data dir."""
    settings = local.LocalSettings(
        cache_dir=tmp_path / "cache", data_dir=tmp_path / "data", backend_port=_free_port()
    )
    env = {**os.environ, "KAFKAML_ADMIN_PASSWORD": PASSWORD}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ["KAFKAML_ADMIN_PASSWORD"] = PASSWORD
    try:
        local.prepare_backend(settings, out=lambda line: None)
    finally:
        del os.environ["KAFKAML_ADMIN_PASSWORD"]
    [program] = [p for p in local.programs(settings) if p.name == "backend"]
    env.update(program.environment)
    env["KAFKAML_EXECUTOR_TIMEOUT_S"] = "8"
    log = (tmp_path / "backend.log").open("wb")
    process = subprocess.Popen(
        program.command, env=env, cwd=local.PROJECT_ROOT, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    url = local.backend_url(settings)
    try:
        wait_until(lambda: _health(url, timeout_s=2), "the backend to answer", timeout_s=90)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)
        log.close()
    assert (settings.data_dir.stat().st_mode & 0o777) == 0o700
    assert (settings.data_dir / "service_token").stat().st_mode & 0o077 == 0


def _health(url: str, timeout_s: float) -> bool:
    try:
        return requests.get(f"{url}/api/health", timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def _token(url: str) -> str:
    session = requests.Session()
    login = session.post(
        f"{url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": url}
    answer = session.post(f"{url}/api/auth/token", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def test_health_answers_within_a_second_while_two_endless_validations_run(
    backend: str,
) -> None:
    headers = {"Authorization": f"Token {_token(backend)}"}
    answers: list[requests.Response] = []

    def validate(name: str) -> None:
        body = {"name": name, "framework": "pytorch", "imports": "", "code": ENDLESS}
        answers.append(requests.post(f"{backend}/api/models", json=body, headers=headers))

    validations = [threading.Thread(target=validate, args=(f"m{i}",)) for i in range(2)]
    for thread in validations:
        thread.start()
    time.sleep(3)  # both requests are in their workers, their sandboxes starting or looping

    assert all(thread.is_alive() for thread in validations)
    for _ in range(3):
        assert _health(backend, timeout_s=1.0)
    for thread in validations:
        thread.join(timeout=240)
    assert [answer.status_code for answer in answers] == [400, 400]
    assert all("time limit" in answer.json()["message"] for answer in answers)
