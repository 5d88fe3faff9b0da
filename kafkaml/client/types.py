"""What the REST API returns, as typed records: one frozen dataclass per output schema.

Each class is named for what it is and mirrors one component of `/api/schema/`
(`SCHEMA_COMPONENTS` names it); `kafkaml/client/tests/test_schema.py` checks every field's name,
type and nullability against the schema, so a change of the API cannot leave them behind.
Fields the API adds later are ignored when parsing, so an older client keeps working.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from typing import Any, TypeVar

JSON = Any  # a free-form JSON value (object, array or scalar)

T = TypeVar("T")

RESULT_FINAL = frozenset({"finished", "failed", "stopped"})
INFERENCE_FINAL = frozenset({"running", "failed", "stopped"})


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    username: str
    is_staff: bool


@dataclasses.dataclass(frozen=True)
class Model:
    id: int
    name: str
    description: str
    framework: str
    imports: str
    code: str
    distributed: bool
    upper_id: int | None
    lower_id: int | None
    summary: JSON
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Configuration:
    id: int
    name: str
    description: str
    ml_model_ids: list[int]
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Deployment:
    id: int
    configuration_id: int
    description: str
    mode: str
    batch_size: int
    fit_kwargs: JSON
    eval_kwargs: JSON
    gpus: int
    reader: str
    confusion_matrix: bool
    target: str
    incremental: JSON | None
    distributed: JSON | None
    semi_supervised: JSON | None
    federated: JSON | None
    result_ids: list[int]
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Result:
    """The training of one model in one deployment. `epochs` holds one object per finished
    epoch (`{"epoch": n, "train": {...}, "validation": {...}}`)."""

    id: int
    deployment_id: int | None
    model_id: int
    snapshot_of_id: int | None
    model_name: str
    framework: str
    status: str
    epochs: JSON
    train_metrics: JSON
    validation_metrics: JSON
    test_metrics: JSON
    confusion_matrix: JSON | None
    training_time_s: float | None
    error: str
    artifact_format: str
    has_artifact: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def final(self) -> bool:
        """True once the status can no longer change (finished, failed, stopped)."""
        return self.status in RESULT_FINAL


@dataclasses.dataclass(frozen=True)
class Datasource:
    id: int
    deployment_id: int
    control_topic: str
    partition: int
    offset: int
    topic: str
    input_format: str
    input_config: JSON
    description: str
    validation_rate: float
    test_rate: float
    total_msg: int | None
    incremental: bool
    message: JSON
    sent_at: dt.datetime | None
    recorded_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class Inference:
    id: int
    result_id: int
    model_version: str
    status: str
    replicas: int
    input_format: str
    input_config: JSON
    input_topic: str
    output_topic: str
    input_bootstrap: str
    output_bootstrap: str
    upper_bootstrap: str
    upper_topic: str
    limit: float | None
    delivery: str
    error: str
    ready_replicas: int
    restarts: int
    last_exit_reason: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def final(self) -> bool:
        """True once it serves (running) or cannot (failed, stopped)."""
        return self.status in INFERENCE_FINAL


@dataclasses.dataclass(frozen=True)
class InferenceDefaults:
    input_format: str
    input_config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Logs:
    """What the runner knows of a job or of an inference's replicas."""

    state: str
    detail: str
    logs: str


@dataclasses.dataclass(frozen=True)
class FederatedWorker:
    """A data owner's federated worker; its credential is shown only when it is registered."""

    id: int
    name: str
    worker_id: str
    datasets: list[Any]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


# Which schema component each record mirrors (checked by the schema test).
SCHEMA_COMPONENTS: dict[type, str] = {
    User: "UserOutput",
    Model: "MLModelOutput",
    Configuration: "ConfigurationOutput",
    Deployment: "DeploymentOutput",
    Result: "ResultOutput",
    Datasource: "DatasourceOutput",
    Inference: "InferenceOutput",
    InferenceDefaults: "InferenceDefaultsOutput",
    Logs: "LogsOutput",
    FederatedWorker: "WorkerOutput",
}


def parse(cls: type[T], data: dict[str, Any]) -> T:
    """`cls` from the API's JSON object: date-times parsed, unknown fields ignored."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = data.get(field.name)
        hint = hints[field.name]
        if value is not None and dt.datetime in (hint, *typing.get_args(hint)):
            value = dt.datetime.fromisoformat(value)
        values[field.name] = value
    return cls(**values)


def to_json(record: Any) -> Any:
    """A record (or a list of them) as JSON-ready data, date-times in ISO 8601."""
    if isinstance(record, list):
        return [to_json(item) for item in record]
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {k: to_json(v) for k, v in dataclasses.asdict(record).items()}
    if isinstance(record, dict):
        return {k: to_json(v) for k, v in record.items()}
    if isinstance(record, dt.datetime):
        return record.isoformat()
    return record
