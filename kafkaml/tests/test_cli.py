"""The `kafkaml` command as a user runs it, against the real stack: every command, its tables
and JSON, and its error paths (a message and exit code 1, never a traceback)."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kafkaml.cli import credentials_path, main
from kafkaml.client.tests.test_client import TORCH_CODE, TORCH_IMPORTS, blobs
from kafkaml.frameworks.onnx import OnnxModel
from kafkaml.testing import Stack


class Cli:
    """Runs `kafkaml ...` in this process and keeps what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str, code: int = 0, stdin: str | None = None) -> str:
        self.capsys.readouterr()
        exit_code = main(list(argv))
        out, err = self.capsys.readouterr()
        assert exit_code == code, (argv, out, err)
        assert "Traceback" not in out + err
        self.err = err
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self(*argv, "-o", "json"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return Cli(capsys)


@pytest.fixture
def signed_in(cli: Cli, kafkaml_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr("sys.stdin", _Lines(kafkaml_stack.password))
    cli("login", "--url", kafkaml_stack.url, "--username", kafkaml_stack.username,
        "--password-stdin", "--bootstrap-servers", kafkaml_stack.bootstrap_servers)  # fmt: skip
    return cli


def test_login_keeps_the_token_readable_by_its_user_only(signed_in: Cli) -> None:
    mode = stat.S_IMODE(credentials_path().stat().st_mode)
    assert mode == 0o600
    assert json.loads(credentials_path().read_text())["token"]


def test_a_whole_flow_from_the_command_line(
    signed_in: Cli, kafkaml_stack: Stack, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    cli = signed_in
    (tmp_path / "net.py").write_text(TORCH_CODE)
    (tmp_path / "imports.py").write_text(TORCH_IMPORTS)
    code, imports = str(tmp_path / "net.py"), str(tmp_path / "imports.py")
    model = cli.json("models", "create", "blobs", "--framework", "pytorch",
                     "--code", code, "--imports", imports)  # fmt: skip
    assert "blobs" in cli("models", "list")
    configuration = cli.json("configurations", "create", "one", "--models", str(model["id"]))
    deployment = cli.json("deploy", str(configuration["id"]), "--epochs", "2")
    x, y = blobs(400)
    np.savetxt(tmp_path / "train.csv", np.column_stack([x, y]), delimiter=",",
               header="a,b,c,d,label", comments="")  # fmt: skip
    data_topic = new_topic()
    sent = cli("send", str(deployment["id"]), str(tmp_path / "train.csv"), "--topic", data_topic,
               "--label-column", "label", "--test-rate", "0.2",
               "--control-topic", kafkaml_stack.control_topic)  # fmt: skip
    assert "sent 400 samples" in sent
    result_id = deployment["result_ids"][0]
    watched = cli("results", "watch", str(result_id), "--timeout", "300")
    assert "epoch    2" in watched and f"result {result_id}: finished" in watched
    assert cli.json("results", "list")[0]["status"] == "finished"
    assert "epoch" in cli("results", "logs", str(result_id)).lower()
    assert cli.json("results", "show", str(result_id))["test_metrics"]["accuracy"] > 0.8
    assert cli.json("models", "show", str(model["id"]))["name"] == "blobs"
    assert cli.json("configurations", "show", str(configuration["id"]))["ml_model_ids"] == [
        model["id"]
    ]
    assert str(deployment["id"]) in cli("deployments", "list")
    assert cli.json("deployments", "show", str(deployment["id"]))["result_ids"] == [result_id]
    onnx = tmp_path / "net.onnx"
    assert cli("results", "download", str(result_id), "--format", "onnx", "-f", str(onnx))
    served = OnnxModel(onnx.read_bytes())
    assert np.mean(np.argmax(served.predict_batch(x), axis=1) == y) > 0.8
    cli("results", "download", str(result_id), "--format", "onnx", "-f", str(tmp_path / "again"))
    assert (tmp_path / "again").read_bytes() == onnx.read_bytes()  # converted once, kept
    cli("results", "download", str(result_id), "-f", str(tmp_path / "net.pth"))
    assert (tmp_path / "net.pth").stat().st_size > 0
    imported = cli.json("models", "import", "again", str(tmp_path / "net.pth"),
                        "--framework", "pytorch", "--format", "pytorch",
                        "--code", code, "--imports", imports)  # fmt: skip
    assert imported["status"] == "finished" and imported["model_name"] == "again"

    # Replaying the recorded stream announces it again for another deployment (whose training
    # the examples cover; here the command's answer is what is checked).
    datasource = cli.json("datasources", "list", "--deployment", str(deployment["id"]))[0]
    assert cli.json("datasources", "show", str(datasource["id"]))["topic"].startswith(data_topic)
    second = cli.json("deploy", str(configuration["id"]), "--epochs", "1")
    replayed = cli(
        "datasources", "replay", str(datasource["id"]), "--deployment", str(second["id"])
    )
    assert f"for deployment {second['id']}" in replayed
    cli("results", "stop", str(second["result_ids"][0]))
    listed = cli.json("results", "list", "--deployment", str(second["id"]))
    assert [r["id"] for r in listed] == second["result_ids"]
    cli("results", "delete", str(second["result_ids"][0]))
    assert f"result {second['result_ids'][0]} deleted" in cli.err
    cli("deployments", "delete", str(second["id"]))
    assert f"deployment {second['id']} deleted" in cli.err
    spare = cli.json("configurations", "create", "spare", "--models", str(model["id"]))
    cli("configurations", "delete", str(spare["id"]))
    assert f"configuration {spare['id']} deleted" in cli.err

    inference = cli.json("inferences", "create", str(result_id), "--input-topic", new_topic(),
                         "--output-topic", new_topic(), "--wait")  # fmt: skip
    np.save(tmp_path / "inputs.npy", x[:50])
    answers = cli.json("predict", str(inference["id"]), str(tmp_path / "inputs.npy"))
    assert [a["row"] for a in answers] == list(range(50))
    assert np.mean([a["argmax"] for a in answers] == y[:50]) > 0.8
    assert cli.json("inferences", "scale", str(inference["id"]), "2")["replicas"] == 2
    swapped = cli.json("inferences", "swap", str(inference["id"]), str(result_id))
    assert swapped["result_id"] == result_id  # a real swap to another model: examples/online.py
    assert "ROW" in cli("predict", str(inference["id"]), str(tmp_path / "inputs.npy"))
    cli("inferences", "logs", str(inference["id"]))
    assert cli.json("inferences", "stop", str(inference["id"]))["status"] == "stopped"
    cli("inferences", "delete", str(inference["id"]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("results", "show", "987654"), "error: Training result not found."),
        (("deploy", "987654", "--batch-size", "0"), "batch_size: Ensure this value"),
        (("deploy", "1", "--fit-kwargs", "[1"), "--fit-kwargs is not JSON"),
        (("models", "create", "m", "--framework", "pytorch", "--code", "/nonexistent.py"),
         "cannot read /nonexistent.py"),
    ],
)  # fmt: skip
def test_a_refused_command_prints_the_apis_message_and_exits_1(
    signed_in: Cli, argv: tuple[str, ...], message: str
) -> None:
    signed_in(*argv, code=1)
    assert message in signed_in.err


def test_invalid_model_code_is_reported_with_its_line(signed_in: Cli, tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("x = 1\nmodel = nope\n")
    signed_in("models", "create", "bad", "--framework", "pytorch",
              "--code", str(tmp_path / "bad.py"), code=1)  # fmt: skip
    assert "line 2" in signed_in.err


def test_a_wrong_password_is_refused(
    cli: Cli, kafkaml_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", _Lines("wrong"))
    cli("login", "--url", kafkaml_stack.url, "--username", "admin", "--password-stdin", code=1)
    assert "Wrong user name or password." in cli.err
    assert not credentials_path().exists()


def test_without_login_a_command_says_to_log_in(cli: Cli) -> None:
    cli("models", "list", code=1)
    assert "kafkaml login" in cli.err


def test_a_backend_that_is_down_is_a_message_not_a_traceback(cli: Cli) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cli("login", "--url", f"http://127.0.0.1:{port}", "--token", "t", code=1)
    assert f"the backend at http://127.0.0.1:{port} cannot be reached" in cli.err


class _Lines:
    """A stand-in standard input holding one line."""

    def __init__(self, line: str) -> None:
        self.line = line + "\n"

    def readline(self) -> str:
        return self.line


def test_a_federated_worker_is_registered_listed_and_revoked(
    signed_in: Cli, tmp_path: Path
) -> None:
    datasets = [{"name": "ecg", "input_shape": [4], "dataset_restrictions": {}, "samples": 50}]
    (tmp_path / "datasets.json").write_text(json.dumps(datasets))

    out = signed_in("workers", "create", "site-a", "--datasets", f"@{tmp_path / 'datasets.json'}")
    [credential] = [line.split()[1] for line in out.splitlines() if line.startswith("CREDENTIAL")]
    assert credential.startswith("kmlw.")
    assert "shown this once" in signed_in.err
    created = signed_in.json("workers", "create", "site-b", "--datasets", json.dumps(datasets))
    assert created["credential"].startswith("kmlw.") and created["datasets"][0]["name"] == "ecg"

    listed = signed_in("workers", "list")
    assert "site-a" in listed and "site-b" in listed and "kmlw." not in listed
    signed_in("workers", "revoke", str(created["id"]))
    assert signed_in.json("workers", "show", str(created["id"]))["revoked_at"] is not None
    signed_in("workers", "create", "bad", "--datasets", '{"name": "ecg"}', code=1)
    assert "--datasets must be a JSON list of objects" in signed_in.err
