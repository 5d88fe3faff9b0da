"""What a job trains: the spec document(s) of the job API, parsed into one checked `JobSpec`.

A single model has one spec document; an early-exit chain has one per sub-model (edge first),
which must agree on the deployment and its training settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafkaml.protocol import DEFAULT_CONTROL_TOPIC

MODES = ("classic", "incremental", "distributed", "semi-supervised", "federated")
STRATEGIES = ("fedavg", "fedprox", "fedadam")
TARGETS = ("label", "input")
# Modes that can train on the input as the target; the others need labels (classes).
INPUT_TARGET_MODES = ("classic", "incremental")


class SpecError(ValueError):
    """A spec document without a field the job needs, or with one it cannot use."""


@dataclass(frozen=True)
class ModelCode:
    """One model to train and the result it reports to."""

    result_id: int
    name: str
    imports: str
    code: str


@dataclass(frozen=True)
class IncrementalOptions:
    """Online training: `stream_timeout_ms` None never ends (indefinite, or Kafka-ML's -1)."""

    stream_timeout_ms: int | None = 60_000
    window: int = 1000
    indefinite: bool = False
    monitoring_metric: str = ""
    change: str = "up"
    improvement: float = 0.05


@dataclass(frozen=True)
class DistributedOptions:
    """How an early-exit chain is compiled (every exit trains on the label)."""

    optimizer: str = "adam"
    learning_rate: float = 0.001
    loss: str = "sparse_categorical_crossentropy"
    metrics: tuple[str, ...] = ("accuracy",)


@dataclass(frozen=True)
class SemiSupervisedOptions:
    """Self-training: `rounds` of pseudo-labels whose confidence is at least `confidence`."""

    rounds: int = 5
    confidence: float = 0.9


@dataclass(frozen=True)
class FederatedOptions:
    """Federated rounds: each round waits for `min_clients` signed updates or `round_timeout_s`.

    `strategy` "fedprox" trains the workers with the proximal term `mu`; "fedadam" moves the
    global weights by a server-side Adam step (`server_learning_rate`) towards the
    sample-weighted mean that the others take as they are. `min_data` and `data_restrictions`
    select the workers' datasets (a worker whose dataset falls short or differs does not take
    part).
    """

    rounds: int = 15
    local_epochs: int = 1
    min_clients: int = 1
    min_data: int = 1
    round_timeout_s: float = 300.0
    strategy: str = "fedavg"
    mu: float = 0.0
    data_restrictions: dict[str, Any] = field(default_factory=dict)
    server_learning_rate: float = 0.01  # FedAdam's


@dataclass(frozen=True)
class JobSpec:
    """Everything the job needs besides the data: models (edge first), mode and settings."""

    deployment_id: int
    deployment_created_at: datetime
    framework: str
    models: list[ModelCode]
    mode: str
    batch_size: int
    control_topic: str = DEFAULT_CONTROL_TOPIC
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    confusion_matrix: bool = False
    reader: str = "native"
    # "label": learn the record's label (key); "input": reproduce the input (autoencoders).
    target: str = "label"
    incremental: IncrementalOptions = field(default_factory=IncrementalOptions)
    distributed: DistributedOptions = field(default_factory=DistributedOptions)
    semi_supervised: SemiSupervisedOptions = field(default_factory=SemiSupervisedOptions)
    federated: FederatedOptions = field(default_factory=FederatedOptions)

    @property
    def result_ids(self) -> list[int]:
        return [model.result_id for model in self.models]


def parse_spec(documents: Sequence[Mapping[str, Any]]) -> JobSpec:
    """One JobSpec from the spec documents of a job's results (edge first for a chain).

    Raises SpecError naming the missing or bad field.
    """
    if not documents:
        raise SpecError("no spec document")
    first = documents[0]
    training = _mapping(first, "training")
    mode = str(training.get("mode", "classic"))
    if mode not in MODES:
        raise SpecError(f"training mode {mode!r} is not one of {', '.join(MODES)}")
    if len(documents) > 1 and mode != "distributed":
        raise SpecError(f"{len(documents)} results in one job need mode 'distributed'")
    return JobSpec(
        deployment_id=_int(first, "deployment_id"),
        deployment_created_at=_timestamp(first.get("deployment_created_at")),
        framework=_text(first, "framework"),
        models=[_model(document) for document in documents],
        mode=mode,
        batch_size=_positive(training, "batch_size"),
        control_topic=str(first.get("control_topic") or DEFAULT_CONTROL_TOPIC),
        fit_kwargs=dict(_mapping(training, "fit_kwargs", required=False)),
        eval_kwargs=dict(_mapping(training, "eval_kwargs", required=False)),
        confusion_matrix=bool(training.get("confusion_matrix", False)),
        reader=str(training.get("reader") or "native"),
        target=_target(training, mode),
        incremental=_incremental(_mapping(training, "incremental", required=False)),
        distributed=_distributed(_mapping(training, "distributed", required=False)),
        semi_supervised=_semi(_mapping(training, "semi_supervised", required=False)),
        federated=_federated(_mapping(training, "federated", required=False)),
    )


def _model(document: Mapping[str, Any]) -> ModelCode:
    model = _mapping(document, "model")
    return ModelCode(
        result_id=_int(document, "result_id"),
        name=str(model.get("name", "")),
        imports=str(model.get("imports") or ""),
        code=_text(model, "code"),
    )


def _target(training: Mapping[str, Any], mode: str) -> str:
    target = str(training.get("target") or "label")
    if target not in TARGETS:
        raise SpecError(f"training target {target!r} is not one of {', '.join(TARGETS)}")
    if target == "input" and mode not in INPUT_TARGET_MODES:
        raise SpecError(f"target 'input' needs mode classic or incremental, not {mode!r}")
    if target == "input" and training.get("confusion_matrix"):
        raise SpecError("a confusion matrix needs class labels; target 'input' has none")
    return target


def _incremental(options: Mapping[str, Any]) -> IncrementalOptions:
    timeout = options.get("stream_timeout_ms", options.get("stream_timeout", 60_000))
    indefinite = bool(options.get("indefinite", False))
    never = indefinite or timeout is None or int(timeout) < 0
    result = IncrementalOptions(
        stream_timeout_ms=None if never else int(timeout),
        window=int(options.get("window", 1000)),
        indefinite=indefinite,
        monitoring_metric=str(options.get("monitoring_metric") or ""),
        change=str(options.get("change", "up")),
        improvement=float(options.get("improvement", 0.05)),
    )
    if result.window < 1:
        raise SpecError("incremental.window must be a positive number of samples")
    if result.change not in ("up", "down"):
        raise SpecError(f"incremental.change {result.change!r} is not 'up' or 'down'")
    if result.indefinite and not result.monitoring_metric:
        raise SpecError("indefinite incremental training needs incremental.monitoring_metric")
    return result


def _distributed(options: Mapping[str, Any]) -> DistributedOptions:
    metrics = options.get("metrics", ["accuracy"])
    if isinstance(metrics, str):
        metrics = [name.strip() for name in metrics.split(",") if name.strip()]
    return DistributedOptions(
        optimizer=str(options.get("optimizer", "adam")),
        learning_rate=float(options.get("learning_rate", 0.001)),
        loss=str(options.get("loss", "sparse_categorical_crossentropy")),
        metrics=tuple(str(name) for name in metrics),
    )


def _semi(options: Mapping[str, Any]) -> SemiSupervisedOptions:
    result = SemiSupervisedOptions(
        rounds=int(options.get("rounds", 5)), confidence=float(options.get("confidence", 0.9))
    )
    if result.rounds < 1 or not 0 <= result.confidence <= 1:
        raise SpecError("semi_supervised needs rounds >= 1 and confidence in [0, 1]")
    return result


def _federated(options: Mapping[str, Any]) -> FederatedOptions:
    strategy = str(options.get("strategy", "fedavg"))
    restrictions = options.get("data_restrictions", options.get("data_restriction")) or {}
    if not isinstance(restrictions, Mapping):
        raise SpecError("federated.data_restrictions must be a JSON object")
    result = FederatedOptions(
        rounds=int(options.get("rounds", 15)),
        local_epochs=int(options.get("local_epochs", 1)),
        min_clients=int(options.get("min_clients", 1)),
        min_data=int(options.get("min_data", 1)),
        round_timeout_s=float(options.get("round_timeout_s", 300.0)),
        strategy=strategy,
        mu=float(options.get("mu", 0.01 if strategy == "fedprox" else 0.0)),
        data_restrictions=dict(restrictions),
        server_learning_rate=float(options.get("server_learning_rate", 0.01)),
    )
    if min(result.rounds, result.local_epochs, result.min_clients, result.min_data) < 1:
        raise SpecError("federated rounds, local_epochs, min_clients and min_data must be >= 1")
    if result.round_timeout_s <= 0 or result.mu < 0 or result.server_learning_rate <= 0:
        raise SpecError(
            "federated round_timeout_s and server_learning_rate must be positive, mu not negative"
        )
    if strategy not in STRATEGIES:
        raise SpecError(f"federated.strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    return result


def _mapping(document: Mapping[str, Any], name: str, *, required: bool = True) -> Mapping[str, Any]:
    value = document.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec field {name!r} must be a JSON object")
    return value


def _int(document: Mapping[str, Any], name: str) -> int:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"spec field {name!r} must be an integer, not {value!r}")
    return value


def _positive(document: Mapping[str, Any], name: str) -> int:
    value = _int(document, name)
    if value < 1:
        raise SpecError(f"spec field {name!r} must be positive, not {value}")
    return value


def _text(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise SpecError(f"spec field {name!r} must be a non-empty string")
    return value


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise SpecError("spec field 'deployment_created_at' must be an ISO 8601 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"deployment_created_at {value!r} is not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
