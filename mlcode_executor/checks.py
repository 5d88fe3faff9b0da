"""The operations' requests, checked before any process is started."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from kafkaml.frameworks.errors import ArtifactError, FrameworkError, TrainingSettingsError
from kafkaml.frameworks.usercode import check_syntax

OPERATIONS = ("validate_model", "validate_training", "validate_artifact", "export_onnx")
# The operations that carry a trained artifact (its code is optional: Keras needs none).
_WITH_ARTIFACT = ("validate_artifact", "export_onnx")
FRAMEWORKS = ("tensorflow", "pytorch")
ARTIFACT_FORMATS = ("keras", "pytorch", "onnx")
GIB = 1024**3


class RequestError(FrameworkError):
    """A request that is malformed (wrong types, unknown operation or framework)."""


def check_request(operation: str, request: Mapping[str, Any]) -> None:
    """Raise RequestError, ModelCodeError (syntax), TrainingSettingsError or ArtifactError for a
    request no child needs to see: these checks are cheap, run no user code, need no framework."""
    if operation not in OPERATIONS:
        raise RequestError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
    if request.get("framework") not in FRAMEWORKS:
        raise RequestError(
            f"framework must be one of {FRAMEWORKS}, got {request.get('framework')!r}"
        )
    for field in ("imports", "code"):
        if not isinstance(request.get(field, ""), str):
            raise RequestError(f"{field} must be a string")
    if operation not in _WITH_ARTIFACT or request.get("code"):
        check_syntax(request.get("imports", ""), request.get("code", ""))
    if operation == "validate_training":
        _check_training(request)
    if operation in _WITH_ARTIFACT:
        _check_artifact(request)


def _check_training(request: Mapping[str, Any]) -> None:
    size = request.get("batch_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise TrainingSettingsError(
            f"batch_size must be a positive integer, got {size!r}", field="batch_size"
        )
    for field in ("fit_kwargs", "eval_kwargs"):
        kwargs = request.get(field)
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise TrainingSettingsError(
                f"{field} must be a JSON object of argument names to values", field=field
            )
    epochs = request["fit_kwargs"].get("epochs", request["fit_kwargs"].get("max_epochs", 1))
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise TrainingSettingsError(
            f"epochs must be a positive integer, got {epochs!r}", field="fit_kwargs"
        )


def _check_artifact(request: Mapping[str, Any]) -> None:
    if request.get("artifact_format") not in ARTIFACT_FORMATS:
        raise ArtifactError(
            f"artifact_format must be one of {ARTIFACT_FORMATS}, "
            f"got {request.get('artifact_format')!r}"
        )
    artifact_bytes(request)


def artifact_bytes(request: Mapping[str, Any]) -> bytes:
    """The artifact of a request, carried as base64 text in JSON."""
    try:
        return base64.b64decode(request.get("artifact", ""), validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ArtifactError("artifact must be base64 text") from exc


def encode_artifact(artifact: bytes) -> str:
    """The base64 text that carries an artifact inside a JSON request."""
    return base64.b64encode(artifact).decode("ascii")
