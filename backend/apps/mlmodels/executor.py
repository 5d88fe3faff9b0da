"""The backend's calls to the model code executor, with its errors turned into API errors.

The executor runs user code in a separate process (local) or service (Kubernetes); the backend
never imports TensorFlow or PyTorch and never runs model code itself.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from backend.kafkaml_backend.errors import ApplicationError, ServiceUnavailableError
from kafkaml.frameworks.errors import FrameworkError, ModelCodeError, TrainingSettingsError
from mlcode_executor.client import ExecutorClient, ExecutorUnavailable


def _client() -> ExecutorClient:
    return ExecutorClient(
        settings.KAFKAML.executor_url, timeout_s=settings.KAFKAML.executor_timeout_s
    )


def validate_model_code(
    *, framework: str, imports: str, code: str, distributed: bool
) -> dict[str, Any]:
    """The executor's summary of the model code.

    Raises ApplicationError (400) with the executor's message and `extra.line` when the code is
    refused, ServiceUnavailableError (503) when the executor cannot be reached.
    """
    try:
        summary: dict[str, Any] = _client().validate_model(
            framework=framework, imports=imports, code=code, distributed=distributed
        )
    except ModelCodeError as error:
        raise ApplicationError(
            f"Model code is invalid: {error}", {"line": error.line, "field": error.field}
        ) from error
    except FrameworkError as error:
        raise ApplicationError(f"Model code is invalid: {error}") from error
    except ExecutorUnavailable as error:
        raise ServiceUnavailableError(f"The model code executor is unavailable: {error}") from error
    return summary


def validate_artifact(
    *, framework: str, artifact: bytes, artifact_format: str, imports: str, code: str
) -> dict[str, Any]:
    """The executor's summary of an imported trained model; errors as `validate_model_code`."""
    try:
        summary: dict[str, Any] = _client().validate_artifact(
            framework=framework,
            artifact=artifact,
            artifact_format=artifact_format,
            imports=imports,
            code=code,
        )
    except ModelCodeError as error:
        raise ApplicationError(
            f"The trained model cannot be loaded: {error}",
            {"line": error.line, "field": error.field},
        ) from error
    except FrameworkError as error:
        raise ApplicationError(f"The trained model cannot be loaded: {error}") from error
    except ExecutorUnavailable as error:
        raise ServiceUnavailableError(f"The model code executor is unavailable: {error}") from error
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
    try:
        _client().validate_training(
            framework=framework,
            imports=imports,
            code=code,
            batch_size=batch_size,
            fit_kwargs=fit_kwargs,
            eval_kwargs=eval_kwargs,
        )
    except TrainingSettingsError as error:
        field = getattr(error, "field", None)
        raise ApplicationError(
            f"Training settings are invalid: {error}",
            {"field": field, "fields": {field or "training": [str(error)]}},
        ) from error
    except FrameworkError as error:
        raise ApplicationError(f"Training settings are invalid: {error}") from error
    except ExecutorUnavailable as error:
        raise ServiceUnavailableError(f"The model code executor is unavailable: {error}") from error


def export_onnx(
    *, framework: str, artifact: bytes, artifact_format: str, imports: str, code: str
) -> bytes:
    """The trained model converted to ONNX by the executor (user code runs there, not here).

    Raises ApplicationError (400) when it cannot be converted, ServiceUnavailableError (503)
    when the executor cannot be reached. The conversion may take longer than a validation
    (the converter traces the model): its time limit is four times the executor's.
    """
    try:
        return ExecutorClient(
            settings.KAFKAML.executor_url, timeout_s=4 * settings.KAFKAML.executor_timeout_s
        ).export_onnx(
            framework=framework,
            artifact=artifact,
            artifact_format=artifact_format,
            imports=imports,
            code=code,
        )
    except FrameworkError as error:
        raise ApplicationError(f"The model cannot be converted to ONNX: {error}") from error
    except ExecutorUnavailable as error:
        raise ServiceUnavailableError(f"The model code executor is unavailable: {error}") from error
