"""What an inference runs: its spec (topics, format, model) and where the spec comes from.

Two sources with one interface: the backend's job API (`BackendSpecSource`), or a JSON file on
disk (`FileSpecSource`) for running an inference without a backend. Both are polled between
batches; a new `model_version` means a model swap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast, get_args

from model_inference.backend import JobApiClient

Delivery = Literal["exactly-once", "at-least-once"]
"""Transactions per batch (read_committed consumers see each answer once), or none (any consumer
reads the outputs; a crash answers some records twice). See model_inference/delivery.py."""
DELIVERIES: tuple[str, ...] = get_args(Delivery)
DEFAULT_DELIVERY: Delivery = "exactly-once"

# How many times a spec and artifact fetched during a concurrent swap are re-fetched to agree.
_CONSISTENT_FETCH_ATTEMPTS = 3


class SpecError(ValueError):
    """An inference spec is missing a field, has a field of the wrong type, or cannot be read."""


@dataclass(frozen=True)
class InferenceSpec:
    """One inference as the backend's `GET /api/jobs/inferences/{id}/spec` describes it."""

    inference_id: int
    model_version: str
    framework: str
    artifact_format: str
    input_format: str
    input_config: dict[str, Any]
    input_topic: str
    output_topic: str
    result_id: int | None = None
    model_imports: str = ""
    model_code: str = ""
    input_bootstrap: str | None = None
    output_bootstrap: str | None = None
    upper_bootstrap: str | None = None
    upper_topic: str | None = None
    limit: float | None = None
    delivery: Delivery = DEFAULT_DELIVERY

    @property
    def early_exit(self) -> bool:
        """Whether this is a lower tier of an early-exit chain (forwards low-confidence rows)."""
        return bool(self.upper_topic) and self.limit is not None

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> InferenceSpec:
        """Parse the JSON object of the job API (or of a spec file). Raises SpecError."""
        if not isinstance(value, Mapping):
            raise SpecError(f"an inference spec is a JSON object, not {type(value).__name__}")
        model = value.get("model") or {}
        if not isinstance(model, Mapping):
            raise SpecError("spec field 'model' must be an object with 'imports' and 'code'")
        limit = _optional(value, "limit", (int, float))
        return cls(
            inference_id=_required(value, "inference_id", int),
            model_version=str(_required(value, "model_version", (str, int))),
            framework=_required(value, "framework", str),
            artifact_format=_required(value, "artifact_format", str),
            input_format=_required(value, "input_format", str),
            input_config=dict(_required(value, "input_config", Mapping)),
            input_topic=_required(value, "input_topic", str),
            output_topic=_required(value, "output_topic", str),
            result_id=_optional(value, "result_id", int),
            model_imports=_optional(model, "imports", str) or "",
            model_code=_optional(model, "code", str) or "",
            input_bootstrap=_optional(value, "input_bootstrap", str) or None,
            output_bootstrap=_optional(value, "output_bootstrap", str) or None,
            upper_bootstrap=_optional(value, "upper_bootstrap", str) or None,
            upper_topic=_optional(value, "upper_topic", str) or None,
            limit=float(limit) if limit is not None else None,
            delivery=_delivery(value),
        )

    def same_pipeline(self, other: InferenceSpec) -> bool:
        """Whether only the model differs: topics, brokers, format and limit are equal."""
        return all(getattr(self, name) == getattr(other, name) for name in _PIPELINE_FIELDS)


_PIPELINE_FIELDS = (
    "inference_id", "input_format", "input_config", "input_topic", "output_topic",
    "input_bootstrap", "output_bootstrap", "upper_bootstrap", "upper_topic", "limit",
    "delivery",
)  # fmt: skip


def _delivery(value: Mapping[str, Any]) -> Delivery:
    delivery = _optional(value, "delivery", str) or DEFAULT_DELIVERY
    if delivery not in DELIVERIES:
        known = ", ".join(DELIVERIES)
        raise SpecError(f"spec field 'delivery' must be one of {known}, not {delivery!r}")
    return cast(Delivery, delivery)


def _required(value: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if value.get(name) is None:
        raise SpecError(f"the inference spec has no '{name}'")
    return _optional(value, name, kind)


def _optional(value: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    item = value.get(name)
    if item is not None and (not isinstance(item, kind) or isinstance(item, bool)):
        raise SpecError(f"spec field '{name}' has the wrong type: {item!r}")
    return item


@dataclass(frozen=True)
class ModelArtifact:
    """The bytes of a trained model and the version they belong to."""

    version: str
    data: bytes


class SpecSource(Protocol):
    """Where a replica reads its spec and model from; polled between batches."""

    def spec(self) -> InferenceSpec:
        """The current spec. Raises SpecError, or the source's transport error."""
        ...

    def model(self) -> tuple[InferenceSpec, ModelArtifact]:
        """The current spec with the artifact of exactly its `model_version`."""
        ...


class FileSpecSource:
    """A spec kept in a JSON file: the spec object plus `artifact_path` (relative to the file).

    This is how an inference runs without a backend. Rewriting the file with another
    `model_version` and `artifact_path` swaps the model of the running replicas; write the new
    artifact first and replace the spec file atomically (write a temporary file, rename it).
    """

    def __init__(self, path: Path, inference_id: int | None = None) -> None:
        self._path = path
        self._inference_id = inference_id

    def spec(self) -> InferenceSpec:
        return InferenceSpec.from_value(self._value())

    def model(self) -> tuple[InferenceSpec, ModelArtifact]:
        value = self._value()
        spec = InferenceSpec.from_value(value)
        artifact_path = _required(value, "artifact_path", str)
        path = (self._path.parent / artifact_path).resolve()
        try:
            data = path.read_bytes()
        except OSError as error:
            raise SpecError(f"cannot read the model artifact {path}: {error}") from error
        return spec, ModelArtifact(spec.model_version, data)

    def _value(self) -> dict[str, Any]:
        try:
            value = json.loads(self._path.read_text())
        except (OSError, ValueError) as error:
            raise SpecError(f"cannot read the spec file {self._path}: {error}") from error
        if not isinstance(value, dict):
            raise SpecError(f"the spec file {self._path} does not hold a JSON object")
        if self._inference_id is not None:
            value["inference_id"] = self._inference_id
        return value


class BackendSpecSource:
    """The spec and artifact of one inference from the backend's job API."""

    def __init__(self, client: JobApiClient, inference_id: int) -> None:
        self._client = client
        self._inference_id = inference_id

    def spec(self) -> InferenceSpec:
        return InferenceSpec.from_value(self._client.inference_spec(self._inference_id))

    def model(self) -> tuple[InferenceSpec, ModelArtifact]:
        """Spec and artifact of one version: a swap between the two requests is retried."""
        for _ in range(_CONSISTENT_FETCH_ATTEMPTS):
            spec = self.spec()
            data, version = self._client.inference_artifact(self._inference_id)
            if version == spec.model_version:
                return spec, ModelArtifact(version, data)
        raise SpecError(
            f"the model of inference {self._inference_id} kept changing while it was fetched "
            f"(spec version {spec.model_version!r}, artifact version {version!r})"
        )
