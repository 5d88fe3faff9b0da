"""The executor client the backend uses: the same calls in local mode and against the
HTTP service. Importing it imports neither TensorFlow nor PyTorch."""

from __future__ import annotations

import functools
from typing import Any

import requests

from kafkaml.frameworks.errors import FrameworkError
from mlcode_executor.checks import GIB, artifact_bytes, encode_artifact
from mlcode_executor.sandbox import (
    ExecutorBusy,
    ExecutorUnavailable,
    Slots,
    Spares,
    error_from_dict,
    execute,
)
from mlcode_executor.settings import ExecutorSettings


@functools.cache
def local_slots() -> Slots:
    """The validation slots every local-mode client of this process shares
    (`KAFKAML_EXECUTOR_MAX_CONCURRENT`, `KAFKAML_EXECUTOR_QUEUE_WAIT_S`, read once)."""
    settings = ExecutorSettings()
    return Slots(settings.max_concurrent, settings.queue_wait_s)


class ExecutorClient:
    """Validate model code, training settings and imported artifacts in a sandbox.

    `url=None` runs each request in a fresh child process on this machine (local mode); a URL
    sends it to the executor service, which runs the same code path there. Every method raises
    the framework errors (`ModelCodeError`, `TrainingSettingsError`, `ArtifactError`) for bad
    input and ExecutorUnavailable when no validation could run.

    Local mode runs at most `slots.limit` validations at once in this process (default: the
    process-wide `local_slots()`); a request that finds no slot within `slots.wait_s` raises
    ExecutorBusy, an ExecutorUnavailable.

    `spares=True` (local mode, for a long-lived client) keeps one warmed-up child per framework
    waiting, so a request does not wait for TensorFlow or PyTorch to import; call `close()` (or
    use the client as a context manager) to end them.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout_s: float = 30,
        memory_bytes: int = 2 * GIB,
        spares: bool = False,
        slots: Slots | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self.spares = Spares(memory_bytes) if spares and self.url is None else None
        self.slots = slots

    def close(self) -> None:
        """End the waiting spare children, if any."""
        if self.spares is not None:
            self.spares.close()

    def __enter__(self) -> ExecutorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def validate_model(
        self, *, framework: str, imports: str, code: str, distributed: bool = False
    ) -> dict[str, Any]:
        """The model's summary: input_shape, output_shape, params, layers."""
        request = {"framework": framework, "imports": imports, "code": code}
        return self._call("validate_model", {**request, "distributed": distributed})

    def validate_training(
        self,
        *,
        framework: str,
        imports: str,
        code: str,
        batch_size: int,
        fit_kwargs: dict[str, Any],
        eval_kwargs: dict[str, Any],
    ) -> None:
        """Succeeds when one dry-run epoch and an evaluation run with these settings."""
        request = {"framework": framework, "imports": imports, "code": code}
        settings = {"batch_size": batch_size, "fit_kwargs": fit_kwargs, "eval_kwargs": eval_kwargs}
        self._call("validate_training", {**request, **settings})

    def validate_artifact(
        self,
        *,
        framework: str,
        artifact: bytes,
        artifact_format: str,
        imports: str = "",
        code: str = "",
    ) -> dict[str, Any]:
        """The summary of an imported trained model (`keras`, `pytorch` weights, `onnx`)."""
        request = {"framework": framework, "imports": imports, "code": code}
        encoded = {"artifact": encode_artifact(artifact), "artifact_format": artifact_format}
        return self._call("validate_artifact", {**request, **encoded})

    def export_onnx(
        self,
        *,
        framework: str,
        artifact: bytes,
        artifact_format: str,
        imports: str = "",
        code: str = "",
    ) -> bytes:
        """The trained model converted to ONNX (ArtifactError, ModelCodeError,
        OnnxExportUnavailable when it cannot be)."""
        request = {"framework": framework, "imports": imports, "code": code}
        encoded = {"artifact": encode_artifact(artifact), "artifact_format": artifact_format}
        result = self._call("export_onnx", {**request, **encoded})
        return artifact_bytes({"artifact": result.get("onnx", "")})

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if self.url is None:
            with (self.slots or local_slots()).take():
                return execute(
                    operation,
                    request,
                    timeout_s=self.timeout_s,
                    memory_bytes=self.memory_bytes,
                    spares=self.spares,
                )
        return self._post(operation, request)

    def _post(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        # The service applies its own limits; wait for its start-up plus the time limit.
        try:
            response = requests.post(
                f"{self.url}/{operation}", json=request, timeout=self.timeout_s + 240
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ExecutorUnavailable(f"the executor at {self.url} did not answer: {exc}") from exc
        if response.status_code == 200:
            return dict(body.get("result", {}))
        if response.status_code == 400 and isinstance(body.get("extra"), dict):
            raise error_from_dict({**body["extra"], "message": body.get("message")})
        raise ExecutorUnavailable(f"the executor answered {response.status_code}: {body}")


__all__ = ["ExecutorBusy", "ExecutorClient", "ExecutorUnavailable", "FrameworkError"]
