"""The executor's HTTP service over real HTTP, through the same client the backend uses."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from kafkaml.frameworks import ModelCodeError, TrainingSettingsError
from kafkaml.frameworks.tests import models
from mlcode_executor.client import ExecutorClient, ExecutorUnavailable
from mlcode_executor.service import make_server
from mlcode_executor.settings import ExecutorSettings


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    settings = ExecutorSettings(host="127.0.0.1", port=0, timeout_s=20, memory_bytes=2**29)
    server = make_server(settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_settings_come_from_kafkaml_executor_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAML_EXECUTOR_TIMEOUT_S", "12.5")
    monkeypatch.setenv("KAFKAML_EXECUTOR_PORT", "9100")
    settings = ExecutorSettings()
    assert (settings.timeout_s, settings.port, settings.memory_bytes) == (12.5, 9100, 2 * 1024**3)


def test_health_endpoint_answers(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}


def test_valid_pytorch_model_gives_its_summary_over_http(url: str) -> None:
    summary = ExecutorClient(url).validate_model(
        framework="pytorch", imports=models.PT_IMPORTS, code=models.PT_DENSE
    )
    assert summary["params"] == models.PT_DENSE_PARAMS
    assert summary["output_shape"] == [None, 3]


def test_runtime_error_comes_back_with_its_line_over_http(url: str) -> None:
    code = "import math\nratio = math.sqrt(-1)\n"
    with pytest.raises(ModelCodeError) as caught:
        ExecutorClient(url).validate_model(framework="tensorflow", imports="", code=code)
    assert (caught.value.field, caught.value.line) == ("code", 2)
    assert "math domain error" in caught.value.message


def test_error_body_has_the_project_error_shape(url: str) -> None:
    body = {"framework": "tensorflow", "imports": "", "code": "x = (\n"}
    response = requests.post(f"{url}/validate_model", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json() == {
        "message": "syntax error: '(' was never closed",
        "extra": {"type": "ModelCodeError", "line": 1, "field": "code"},
    }


def test_training_settings_error_names_its_field_over_http(url: str) -> None:
    with pytest.raises(TrainingSettingsError) as caught:
        ExecutorClient(url).validate_training(
            framework="pytorch",
            imports=models.PT_IMPORTS,
            code=models.PT_DENSE,
            batch_size=-3,
            fit_kwargs={},
            eval_kwargs={},
        )
    assert caught.value.field == "batch_size"


def test_a_body_that_is_not_a_json_object_is_refused(url: str) -> None:
    response = requests.post(f"{url}/validate_model", data=b"[1, 2]", timeout=10)
    assert response.status_code == 400
    assert response.json()["message"] == "body must be a JSON object"


def test_an_unreachable_service_is_executor_unavailable() -> None:
    with pytest.raises(ExecutorUnavailable):
        ExecutorClient("http://127.0.0.1:9", timeout_s=1).validate_model(
            framework="tensorflow", imports="", code="model = 1"
        )


def test_python_m_mlcode_executor_serves_with_settings_from_the_environment() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "KAFKAML_EXECUTOR_HOST": "127.0.0.1",
        "KAFKAML_EXECUTOR_PORT": str(port),
        "KAFKAML_EXECUTOR_SPARES": "false",
    }
    service = subprocess.Popen([sys.executable, "-m", "mlcode_executor"], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(url, deadline=time.monotonic() + 60)
        with pytest.raises(ModelCodeError) as caught:
            ExecutorClient(url).validate_model(framework="pytorch", imports="", code="1 +\n")
        assert caught.value.line == 1
    finally:
        service.terminate()
        service.wait(30)


def _wait_until_healthy(url: str, *, deadline: float) -> None:
    while True:
        try:
            requests.get(f"{url}/healthz", timeout=1).raise_for_status()
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling a condition with a deadline, not standing in for one
