"""The client's error paths against the real stack. The whole flow through the client (train,
download native and ONNX, serve, predict) runs in kafkaml/tests/test_cli.py (the CLI is the
client's) and in the examples (tests/test_examples.py)."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest

from kafkaml.client import Client, KafkamlError
from kafkaml.testing import Stack

TORCH_IMPORTS = "import torch\nfrom ignite.metrics import Accuracy, Loss"
TORCH_CODE = """\
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                          torch.nn.Linear(16, 3))
    def forward(self, x):
        return self.layers(x)
    def loss_fn(self):
        return torch.nn.CrossEntropyLoss()
    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)
    def metrics(self):
        return {'loss': Loss(self.loss_fn()), 'accuracy': Accuracy()}
model = Net()
"""


def blobs(count: int, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Three well-separated classes of 4-feature samples."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, count)
    x = rng.normal(0.0, 0.5, (count, 4)) + np.eye(3, 4)[y] * 4
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture
def client(kafkaml_stack: Stack) -> Client:
    return Client(
        kafkaml_stack.url,
        username=kafkaml_stack.username,
        password=kafkaml_stack.password,
        bootstrap_servers=kafkaml_stack.bootstrap_servers,
    )


def test_a_wrong_password_is_refused_with_the_apis_message(kafkaml_stack: Stack) -> None:
    with pytest.raises(KafkamlError) as refused:
        Client(kafkaml_stack.url, username=kafkaml_stack.username, password="wrong")
    assert refused.value.status == 401
    assert refused.value.message == "Wrong user name or password."


def test_an_unknown_id_is_a_404_with_the_apis_message(client: Client) -> None:
    with pytest.raises(KafkamlError) as missing:
        client.results.get(987_654)
    assert missing.value.status == 404
    assert "not found" in missing.value.message.lower()


def test_invalid_model_code_names_its_line(client: Client) -> None:
    with pytest.raises(KafkamlError) as invalid:
        client.models.create(
            name="bad", framework="pytorch", imports="import torch", code="x = 1\nmodel = nope\n"
        )
    assert invalid.value.status == 400
    assert invalid.value.extra["line"] == 2, invalid.value.extra


def test_a_validation_error_carries_its_field(client: Client) -> None:
    with pytest.raises(KafkamlError) as invalid:
        client.deployments.create(987_654, batch_size=0)
    assert "batch_size" in invalid.value.extra["fields"]
    assert "batch_size" in str(invalid.value)


def test_a_backend_that_is_down_is_one_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", token="t", timeout_s=5)
    with pytest.raises(KafkamlError) as down:
        client.models.list()
    assert down.value.status is None
    assert "cannot be reached" in down.value.message


def test_a_federated_worker_is_registered_listed_and_revoked_with_its_credential_shown_once(
    client: Client,
) -> None:
    dataset = {"name": "d", "input_shape": [8], "dataset_restrictions": {}, "samples": 10}
    worker, credential = client.federated_workers.create("site", [dataset])
    assert credential.startswith(f"kmlw.{worker.worker_id}.")
    assert worker.datasets == [dataset] and worker.revoked_at is None
    assert worker.id in {listed.id for listed in client.federated_workers.list()}
    client.federated_workers.revoke(worker.id)
    assert client.federated_workers.get(worker.id).revoked_at is not None
