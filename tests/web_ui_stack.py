"""The local stack as the web UI's browser test and benchmark run it.

What `make run` starts (the backend under gunicorn with gthread workers, the local runner, the
control logger) on a free port, with a data dir and a control topic of its own, on a given
broker. Used by tests/test_web_ui.py and bench/web_ui.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from kafkaml import frontend
from kafkaml.local import LocalSettings, prepare_backend, programs
from kafkaml.settings import PROJECT_ROOT
from kafkaml.testing import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def ui_stack(bootstrap: str, root: Path, port: int = 0) -> Iterator[dict[str, str]]:
    """The stack's services serving the current build; yields the KAFKAML_UI_* variables the
    Playwright specs read (address, admin credentials, broker, control topic, logs)."""
    settings = LocalSettings(
        cache_dir=root / "cache", data_dir=root / "data", backend_port=port or free_port(),
        broker_port=int(bootstrap.rsplit(":", 1)[1]),
    )  # fmt: skip
    password = uuid.uuid4().hex
    control_topic = f"web-ui-control-{uuid.uuid4().hex[:8]}"
    extra = {
        "KAFKAML_ADMIN_PASSWORD": password,
        "KAFKAML_CONTROL_TOPIC": control_topic,
        "KAFKAML_FRONTEND_DIR": str(frontend.FRONTEND / "dist"),
        "KAFKAML_EXECUTOR_TIMEOUT_S": "120",
    }
    os.environ.update(extra)  # prepare_backend's management commands read the environment
    try:
        prepare_backend(settings, lambda line: None)
    finally:
        for name in extra:
            os.environ.pop(name, None)
    processes = []
    for program in programs(settings):
        command = list(program.command)
        if program.name == "backend":  # live views hold a thread each, not a whole worker
            command += ["--worker-class", "gthread", "--threads", "8"]
        log = (root / f"{program.name}.log").open("w")
        processes.append(
            subprocess.Popen(
                command,
                env={**os.environ, **program.environment, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    url = f"http://127.0.0.1:{settings.backend_port}"
    try:
        wait_until(lambda: _answers(f"{url}/api/health"), "the backend answers", 90)
        yield {
            "KAFKAML_UI_URL": url,
            "KAFKAML_UI_USER": "admin",
            "KAFKAML_UI_PASSWORD": password,
            "KAFKAML_UI_BOOTSTRAP": bootstrap,
            "KAFKAML_UI_CONTROL_TOPIC": control_topic,
            "KAFKAML_UI_PYTHON": sys.executable,
            "KAFKAML_UI_DATA_SCRIPT": str(Path(__file__).with_name("web_ui_data.py")),
            "KAFKAML_UI_LOGS": str(root),
        }
    finally:
        subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "backend" / "manage.py"), "stop_jobs"],
            env={**os.environ, **programs(settings)[0].environment}, capture_output=True,
            check=False, timeout=120,
        )  # fmt: skip
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
