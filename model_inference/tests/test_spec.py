"""Inference specs, the spec file source and the settings that choose a source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_inference.__main__ import spec_source
from model_inference.settings import InferenceSettings, JobApiSettings, SettingsError
from model_inference.spec import BackendSpecSource, FileSpecSource, InferenceSpec, SpecError

SPEC: dict[str, Any] = {
    "inference_id": 7,
    "result_id": 3,
    "model_version": "5",
    "framework": "pytorch",
    "artifact_format": "pytorch",
    "model": {"imports": "import torch", "code": "model = None"},
    "input_format": "RAW",
    "input_config": {"data_type": "float32", "data_reshape": "18"},
    "input_topic": "in",
    "output_topic": "out",
    "input_bootstrap": "",
    "output_bootstrap": None,
    "upper_bootstrap": None,
    "upper_topic": "",
    "limit": None,
}


def test_a_backend_spec_parses_into_its_fields() -> None:
    spec = InferenceSpec.from_value(SPEC)
    assert (spec.inference_id, spec.result_id, spec.model_version) == (7, 3, "5")
    assert (spec.model_imports, spec.model_code) == ("import torch", "model = None")
    assert spec.input_bootstrap is None and spec.upper_topic is None
    assert not spec.early_exit


def test_an_upper_topic_with_a_limit_makes_an_early_exit_tier() -> None:
    spec = InferenceSpec.from_value({**SPEC, "upper_topic": "up", "limit": 0.8})
    assert spec.early_exit and spec.limit == 0.8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_topic": None}, "no 'input_topic'"),
        ({"inference_id": "7"}, "'inference_id' has the wrong type"),
        ({"limit": True}, "'limit' has the wrong type"),
        ({"model": "code"}, "'model' must be an object"),
        ({"delivery": "at-most-once"}, "'delivery' must be one of exactly-once, at-least-once"),
    ],
)
def test_a_bad_spec_is_refused_with_the_field_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        InferenceSpec.from_value({**SPEC, **change})


def test_only_a_model_change_keeps_the_same_pipeline() -> None:
    spec = InferenceSpec.from_value(SPEC)
    assert spec.same_pipeline(InferenceSpec.from_value({**SPEC, "model_version": "6"}))
    assert not spec.same_pipeline(InferenceSpec.from_value({**SPEC, "output_topic": "other"}))
    assert not spec.same_pipeline(InferenceSpec.from_value({**SPEC, "delivery": "at-least-once"}))


def test_a_spec_without_delivery_is_exactly_once() -> None:
    assert InferenceSpec.from_value(SPEC).delivery == "exactly-once"
    assert InferenceSpec.from_value({**SPEC, "delivery": "at-least-once"}).delivery == (
        "at-least-once"
    )


def test_a_spec_file_serves_its_artifact_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"weights")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**SPEC, "artifact_path": "model.pt"}))
    spec, artifact = FileSpecSource(path, inference_id=9).model()
    assert spec.inference_id == 9
    assert (artifact.version, artifact.data) == ("5", b"weights")


def test_an_unreadable_spec_file_raises_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text("{not json")
    with pytest.raises(SpecError, match="cannot read the spec file"):
        FileSpecSource(path).spec()


def test_settings_need_a_spec_file_or_the_backend_with_token_and_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("KAFKAML_INFERENCE_SPEC_FILE", "KAFKAML_BACKEND_URL", "KAFKAML_JOB_TOKEN",
                 "KAFKAML_INFERENCE_ID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError, match="KAFKAML_INFERENCE_SPEC_FILE"):
        spec_source(InferenceSettings(), JobApiSettings())
    monkeypatch.setenv("KAFKAML_BACKEND_URL", "http://backend")
    monkeypatch.setenv("KAFKAML_JOB_TOKEN", "secret")
    monkeypatch.setenv("KAFKAML_INFERENCE_ID", "4")
    monkeypatch.setenv("KAFKAML_INFERENCE_MAX_BATCH", "250")
    settings, job = InferenceSettings(), JobApiSettings()
    assert (settings.id, settings.max_batch, job.backend_url) == (4, 250, "http://backend")
    assert isinstance(spec_source(settings, job), BackendSpecSource)
    monkeypatch.setenv("KAFKAML_INFERENCE_SPEC_FILE", str(tmp_path / "spec.json"))
    assert isinstance(spec_source(InferenceSettings(), job), FileSpecSource)
