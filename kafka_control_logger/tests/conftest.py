"""The control logger's tests run the real backend (Django, over HTTP) beside the real broker."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import django
import pytest
import requests

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from pytest_django.live_server_helper import LiveServer  # noqa: E402

from backend.apps.mlmodels.executor import validate_model_code  # noqa: E402
from backend.apps.training.models import Deployment  # noqa: E402
from backend.testing import TF_MODEL, deployed  # noqa: E402


@pytest.fixture(scope="session")
def tf_summary() -> dict[str, Any]:
    """The executor's summary of the sample TensorFlow model (one real validation)."""
    return validate_model_code(
        framework=TF_MODEL.framework,
        imports=TF_MODEL.imports,
        code=TF_MODEL.code,
        distributed=False,
    )


@pytest.fixture
def make_deployment(transactional_db: None, tf_summary: dict[str, Any]) -> Callable[[], Deployment]:
    """Factory of deployments of one stored TensorFlow model (through the services)."""
    from backend.testing import stored_model

    owner = get_user_model().objects.create_user(username="owner", password="pw")

    def create() -> Deployment:
        return deployed(owner, [stored_model(owner, {"tf": tf_summary})])

    return create


class BackendServer:
    """The backend served over HTTP on one fixed port, that a test can start and stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._server: LiveServer | None = None

    def start(self) -> None:
        if self._server is None:
            self._server = LiveServer(f"127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
def backend_server(transactional_db: None) -> Iterator[BackendServer]:
    """A backend that is not started yet: call `.start()` (and `.stop()`) in the test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = BackendServer(port)
    yield server
    server.stop()


class FailingProxy:
    """A reverse proxy in front of the real backend that answers 500 (after `hang_s`) instead of
    forwarding a POST whose body contains `fail_when` (and the health check while
    `fail_health`): a backend that keeps failing or hanging on one message, or fails on
    everything. Counts the messages it failed."""

    def __init__(self) -> None:
        self.hang_s = 0.0
        self.fail_when = b"never sent"
        self.fail_health = False
        self.failed = 0
        self._server: ThreadingHTTPServer | None = None

    def start(
        self,
        backend_url: str,
        *,
        fail_when: bytes,
        fail_health: bool = False,
        hang_s: float = 0.0,
    ) -> None:
        self.fail_when, self.fail_health, self.hang_s = fail_when, fail_health, hang_s
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if proxy.fail_health:
                    self._answer(500, b'{"message": "database down", "extra": {}}')
                else:
                    self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if proxy.fail_when in body:
                    proxy.failed += 1
                    time.sleep(proxy.hang_s)  # no answer in the client's time
                    self._answer(500, b'{"message": "Internal server error.", "extra": {}}')
                else:
                    self._forward(body)

            def _forward(self, body: bytes) -> None:
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() in ("authorization", "content-type")
                }
                answer = requests.request(
                    self.command, backend_url + self.path, data=body or None, headers=headers
                )
                self._answer(answer.status_code, answer.content)

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def failing_proxy() -> Iterator[FailingProxy]:
    proxy = FailingProxy()
    yield proxy
    proxy.stop()
