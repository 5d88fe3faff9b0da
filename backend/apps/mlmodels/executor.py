"""The backend's calls to the model code executor, with its errors turned into API errors.

The executor runs user code in a separate process (local) or service (Kubernetes); the backend
never imports TensorFlow or PyTorch and never runs model code itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from backend.kafkaml_backend.errors import ApplicationError, ServiceUnavailableError
from kafkaml.frameworks.errors import FrameworkError, ModelCodeError, TrainingSettingsError
from mlcode_executor.client import ExecutorClient, ExecutorUnavailable


def _client() -> ExecutorClient:
    return ExecutorClient(
        settings.KAFKAML.executor_url, timeout_s=settings.KAFKAML.executor_timeout_s
    )


@contextmanager
def _refusals(message: str, detailed: type[FrameworkError] | None = None) -> Iterator[None]:
    """The executor's errors as API errors: a FrameworkError as ApplicationError (400)
    "`message`: error", whose extra gives the facts when the error is a `detailed` one;
    ExecutorUnavailable as ServiceUnavailableError (503)."""
    try:
        yield
    except FrameworkError as error:
        extra = _facts(error) if detailed and isinstance(error, detailed) else None
        raise ApplicationError(f"{message}: {error}", extra) from error
    except ExecutorUnavailable as error:
        raise ServiceUnavailableError(f"The model code executor is unavailable: {error}") from error


def _facts(error: FrameworkError) -> dict[str, Any]:
    """The line and field of refused model code; the field of refused training settings."""
    if isinstance(error, ModelCodeError):
        return {"line": error.line, "field": error.field}
    field = getattr(error, "field", None)
    return {"field": field, "fields": {field or "training": [str(error)]}}


def validate_model_code(
    *, framework: str, imports: str, code: str, distributed: bool
) -> dict[str, Any]:
    """The executor's summary of the model code.

    Raises ApplicationError (400) with the executor's message and `extra.line` when the code is
    refused, ServiceUnavailableError (503) when the executor cannot be reached.
    """
    with _refusals("Model code is invalid", ModelCodeError):
        summary: dict[str, Any] = _client().validate_model(
            framework=framework, imports=imports, code=code, distributed=distributed
        )
    return summary


def validate_artifact(
    *, framework: str, artifact: bytes, artifact_format: str, imports: str, code: str
) -> dict[str, Any]:
    """The executor's summary of an imported trained model; errors as `validate_model_code`."""
    with _refusals("The trained model cannot be loaded", ModelCodeError):
        summary: dict[str, Any] = _client().validate_artifact(
            framework=framework,
            artifact=artifact,
            artifact_format=artifact_format,
            imports=imports,
            code=code,
        )
    return summary


def validate_training(
    *,
    framework: str,
    imports: str,
    code: str,
    batch_size: int,
    fit_kwargs: dict[str, Any],
    eval_kwargs: dict[str, Any],
) -> None:
    """Dry-run training settings for one model; ApplicationError names the refused field."""
    with _refusals("Training settings are invalid", TrainingSettingsError):
        _client().validate_training(
            framework=framework,
            imports=imports,
            code=code,
            batch_size=batch_size,
            fit_kwargs=fit_kwargs,
            eval_kwargs=eval_kwargs,
        )


def export_onnx(
    *, framework: str, artifact: bytes, artifact_format: str, imports: str, code: str
) -> bytes:
    """The trained model converted to ONNX by the executor (user code runs there, not here).

    Raises ApplicationError (400) when it cannot be converted, ServiceUnavailableError (503)
    when the executor cannot be reached. The conversion may take longer than a validation
    (the converter traces the model): its time limit is four times the executor's.
    """
    timeout_s = 4 * settings.KAFKAML.executor_timeout_s
    with _refusals("The model cannot be converted to ONNX"):
        return ExecutorClient(settings.KAFKAML.executor_url, timeout_s=timeout_s).export_onnx(
            framework=framework,
            artifact=artifact,
            artifact_format=artifact_format,
            imports=imports,
            code=code,
        )
