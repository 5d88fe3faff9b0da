"""The executor in local mode: every request runs in a fresh sandboxed child process."""

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from kafkaml.frameworks import ArtifactError, ModelCodeError, TrainingSettingsError
from kafkaml.frameworks.tests import models
from mlcode_executor.checks import RequestError
from mlcode_executor.client import ExecutorClient

MIB = 1024**2


@pytest.fixture(scope="module")
def client() -> Iterator[ExecutorClient]:
    """Small limits keep the failure cases quick (the defaults are 30 s and 2 GiB). No spares:
    on two shared cores a spare's start-up competes with the request it should speed up."""
    with ExecutorClient(timeout_s=20, memory_bytes=512 * MIB) as shared:
        yield shared


@pytest.fixture(scope="module")
def hurried() -> Iterator[ExecutorClient]:
    with ExecutorClient(timeout_s=3, memory_bytes=512 * MIB) as shared:
        yield shared


def tf_model(client: ExecutorClient, code: str) -> dict[str, Any]:
    return client.validate_model(framework="tensorflow", imports=models.TF_IMPORTS, code=code)


def test_convolutional_pytorch_model_gives_its_summary(client: ExecutorClient) -> None:
    summary = client.validate_model(
        framework="pytorch", imports=models.PT_IMPORTS, code=models.PT_CONV
    )
    assert summary["input_shape"] == [None, 1, 28, 28]
    assert summary["output_shape"] == [None, 10]
    assert summary["params"] == models.PT_CONV_PARAMS


def test_early_exit_lower_tier_in_kafka_ml_style_validates_with_both_outputs(
    client: ExecutorClient,
) -> None:
    # The edge tier of the 3-tier chain; all three tiers and the chain are tested in-process
    # in kafkaml/frameworks/tests/test_tensorflow.py.
    summary = client.validate_model(
        framework="tensorflow", imports=models.TF_IMPORTS, code=models.TF_EDGE, distributed=True
    )
    assert summary["output_shape"] == [[None, 8], [None, 3]]
    assert summary["input_shape"] == [None, 18]


def test_syntax_error_reports_its_line_without_starting_a_process(client: ExecutorClient) -> None:
    with pytest.raises(ModelCodeError) as caught:
        tf_model(client, "model = keras.Sequential([\n    layers.Dense(3)\n    layers.Dense(1)])\n")
    assert (caught.value.field, caught.value.line) == ("code", 2)


def test_exception_while_building_model_reports_its_line(client: ExecutorClient) -> None:
    code = (
        "inputs = keras.Input(shape=(18,))\n"
        "hidden = layers.Dense(8)(inputs)\n"
        "output = layers.Dense(-1)(hidden)\n"
        "model = keras.Model(inputs, output)\n"
    )
    with pytest.raises(ModelCodeError) as caught:
        tf_model(client, code)
    assert (caught.value.field, caught.value.line) == ("code", 3)
    assert "ValueError" in caught.value.message


@pytest.mark.parametrize(
    ("code", "message", "line"),
    [
        ("x = 0\nwhile True:\n    x += 1\n", "did not finish within 3 s (time limit)", None),
        (
            "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 1024 * 1024))\n",
            "exceeded the memory limit",
            3,
        ),
        ("import sys\nsys.exit(0)\n", "called sys.exit(0)", 2),
        ("import os\nos._exit(3)\n", "called os._exit(3)", 2),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "signal SIGKILL", None),
    ],
    ids=["infinite-loop", "allocation-bomb", "sys-exit", "os-exit", "self-kill"],
)
def test_hostile_code_is_stopped_and_reported(
    hurried: ExecutorClient, code: str, message: str, line: int | None
) -> None:
    with pytest.raises(ModelCodeError) as caught:
        hurried.validate_model(framework="tensorflow", imports="", code=code)
    assert message in caught.value.message
    assert caught.value.line == line


def test_after_hostile_code_the_next_request_succeeds_with_a_dense_model_summary(
    hurried: ExecutorClient, client: ExecutorClient
) -> None:
    with pytest.raises(ModelCodeError, match="time limit"):
        hurried.validate_model(framework="tensorflow", imports="", code="while True:\n    pass\n")
    summary = tf_model(client, models.TF_DENSE)
    assert summary["input_shape"] == [None, 18]
    assert summary["output_shape"] == [None, 3]
    assert summary["params"] == models.TF_DENSE_PARAMS
    assert [layer["type"] for layer in summary["layers"]] == ["Dense"] * 3


def test_user_code_sees_none_of_the_callers_environment(
    client: ExecutorClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKAML_DATABASE_URL", "postgresql://secret@db/kafkaml")
    code = (
        "import os\nassert 'KAFKAML_DATABASE_URL' not in os.environ, 'leaked'\n" + models.TF_DENSE
    )
    assert tf_model(client, code)["output_shape"] == [None, 3]


def test_training_settings_pass_a_dry_run_for_both_frameworks(client: ExecutorClient) -> None:
    for framework, imports, code, fit in [
        ("tensorflow", models.TF_IMPORTS, models.TF_DENSE, {"epochs": 50, "shuffle": True}),
        ("pytorch", models.PT_IMPORTS, models.PT_DENSE, {"max_epochs": 50}),
    ]:
        client.validate_training(
            framework=framework,
            imports=imports,
            code=code,
            batch_size=64,
            fit_kwargs=fit,
            eval_kwargs={},
        )


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"batch_size": 0, "fit_kwargs": {"epochs": 1}, "eval_kwargs": {}}, "batch_size"),
        ({"batch_size": 8, "fit_kwargs": "epochs=5", "eval_kwargs": {}}, "fit_kwargs"),
        ({"batch_size": 8, "fit_kwargs": {"epochs": -1}, "eval_kwargs": {}}, "fit_kwargs"),
        ({"batch_size": 8, "fit_kwargs": {"epochs": 1}, "eval_kwargs": []}, "eval_kwargs"),
        (
            {"batch_size": 8, "fit_kwargs": {"epochs": 1, "epocks": 2}, "eval_kwargs": {}},
            "fit_kwargs",
        ),
        (
            {"batch_size": 8, "fit_kwargs": {"epochs": 1}, "eval_kwargs": {"stepz": 1}},
            "eval_kwargs",
        ),
    ],
    ids=[
        "zero-batch",
        "string-kwargs",
        "negative-epochs",
        "list-eval",
        "bad-fit-arg",
        "bad-eval-arg",
    ],
)
def test_bad_training_settings_name_their_field(
    client: ExecutorClient, settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(TrainingSettingsError) as caught:
        client.validate_training(
            framework="tensorflow", imports=models.TF_IMPORTS, code=models.TF_DENSE, **settings
        )
    assert caught.value.field == field


def test_imported_trained_models_validate_in_every_format(client: ExecutorClient) -> None:
    from kafkaml.frameworks import get_framework

    keras_model = get_framework("tensorflow").build(models.TF_IMPORTS, models.TF_DENSE)
    torch_model = get_framework("pytorch").build(models.PT_IMPORTS, models.PT_DENSE)
    uploads = [
        ("tensorflow", keras_model.save(), "keras", "", ""),
        ("pytorch", torch_model.save(), "pytorch", models.PT_IMPORTS, models.PT_DENSE),
        ("pytorch", torch_model.export_onnx(), "onnx", "", ""),
    ]
    for framework, artifact, artifact_format, imports, code in uploads:
        summary = client.validate_artifact(
            framework=framework,
            artifact=artifact,
            artifact_format=artifact_format,
            imports=imports,
            code=code,
        )
        assert summary["input_shape"] == [None, 18], artifact_format
        assert summary["output_shape"] == [None, 3], artifact_format


def test_an_artifact_that_is_not_a_model_is_an_artifact_error(client: ExecutorClient) -> None:
    with pytest.raises(ArtifactError, match="ONNX"):
        client.validate_artifact(
            framework="pytorch", artifact=np.arange(9).tobytes(), artifact_format="onnx"
        )


def test_unknown_framework_is_refused_before_any_process_starts(client: ExecutorClient) -> None:
    with pytest.raises(RequestError, match="framework"):
        client.validate_model(framework="sklearn", imports="", code="model = 1")


def test_a_spare_sandbox_serves_one_request_is_replaced_and_ends_with_the_client() -> None:
    with ExecutorClient(spares=True) as pooled:
        assert pooled.spares is not None
        with pytest.raises(ModelCodeError, match="Keras model"):
            pooled.validate_model(framework="tensorflow", imports="", code="model = None")
        [spare] = pooled.spares.pids()
        summary = pooled.validate_model(
            framework="tensorflow", imports=models.TF_IMPORTS, code=models.TF_DENSE
        )
        assert summary["params"] == models.TF_DENSE_PARAMS
        [replacement] = pooled.spares.pids()
    assert replacement != spare
    for pid in (spare, replacement):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_processes_started_by_user_code_die_with_the_sandbox(hurried: ExecutorClient) -> None:
    marker = f"{313 + os.getpid() % 1000}.25"  # a sleep length no other process uses
    code = f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\nwhile True:\n    pass\n"
    with pytest.raises(ModelCodeError, match="time limit"):
        hurried.validate_model(framework="tensorflow", imports="", code=code)
    assert not [cmd for cmd in _command_lines() if cmd == ["sleep", marker]]


def _command_lines() -> list[list[str]]:
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    lines.append(cmdline.read().decode().split("\0")[:-1])
            except OSError:
                continue  # it ended while we looked
    return lines
