"""The control logger's tests run the real backend (Django, over HTTP) beside the real broker."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest

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
