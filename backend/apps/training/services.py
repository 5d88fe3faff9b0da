"""Writes of deployments and training results, and the status machine of a result.

A result moves created -> running -> finished | failed | stopped; created may also fail or stop.
Transitions lock the row, so a job's report and a user's stop cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from backend.apps.mlmodels import executor
from backend.apps.mlmodels.models import Configuration, MLModel
from backend.apps.mlmodels.services import model_create_validated
from backend.apps.training.models import (
    ArtifactFormat,
    Deployment,
    ResultStatus,
    TrainingMode,
    TrainingResult,
    TrainingTarget,
    artifact_storage,
)
from backend.kafkaml_backend.errors import ApplicationError, ConflictError, NotFoundError
from backend.kafkaml_backend.runners import get_runner

ARTIFACT_SUFFIX = {
    ArtifactFormat.KERAS: "keras",
    ArtifactFormat.PYTORCH: "pt",
    ArtifactFormat.ONNX: "onnx",
}
DEFAULT_ARTIFACT_FORMAT = {"tensorflow": ArtifactFormat.KERAS, "pytorch": ArtifactFormat.PYTORCH}

ACTIVE = (ResultStatus.CREATED, ResultStatus.RUNNING)


@dataclass(frozen=True)
class TrainingSettings:
    """Every training setting of a deployment; mode options are validated JSON objects."""

    batch_size: int
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    mode: str = TrainingMode.CLASSIC
    gpus: int = 0
    reader: str = "native"
    confusion_matrix: bool = False
    target: str = TrainingTarget.LABEL
    incremental: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    semi_supervised: dict[str, Any] | None = None
    federated: dict[str, Any] | None = None


def training_groups(models: Iterable[MLModel]) -> list[list[MLModel]]:
    """The models one job each trains: a plain model alone, a chain whole (edge to cloud)."""
    by_id = {model.pk: model for model in models}
    groups: list[list[MLModel]] = []
    for model in sorted(by_id.values(), key=lambda m: m.pk):
        if model.upper_id in by_id:
            continue  # trained with the chain of its top model
        chain = [model]
        while (lower := _lower_in(chain[-1], by_id)) is not None:
            chain.append(lower)
        groups.append(list(reversed(chain)))
    return groups


def _lower_in(model: MLModel, by_id: dict[int, MLModel]) -> MLModel | None:
    return next((m for m in by_id.values() if m.upper_id == model.pk), None)


def deployment_create(
    *,
    owner: User,
    configuration: Configuration,
    training: TrainingSettings,
    description: str = "",
) -> Deployment:
    """Store a deployment with one result per model and start one job per model or chain.

    The jobs start through the runner after the transaction commits. Raises ApplicationError for
    settings that do not fit the configuration or that the executor's dry run refuses.
    """
    groups = training_groups(configuration.ml_models.all())
    _check_mode(training, groups)
    if settings.KAFKAML.validate_training_settings:
        # A Keras early-exit tier is not compiled on its own (the job compiles the chain with
        # the deployment's distributed options): there is nothing to dry-run for it alone.
        for model in (m for group in groups for m in group if not _chained_keras(m)):
            executor.validate_training(
                framework=model.framework,
                imports=model.imports,
                code=model.code,
                batch_size=training.batch_size,
                fit_kwargs=training.fit_kwargs,
                eval_kwargs=training.eval_kwargs,
            )
    with transaction.atomic():
        deployment = Deployment.objects.create(
            owner=owner, configuration=configuration, description=description, **vars(training)
        )
        result_groups = [
            [
                TrainingResult.objects.create(owner=owner, deployment=deployment, model=model)
                for model in group
            ]
            for group in groups
        ]
        transaction.on_commit(lambda: _start(deployment, result_groups))
    return deployment


def _start(deployment: Deployment, result_groups: Sequence[Sequence[TrainingResult]]) -> None:
    runner = get_runner()
    for results in result_groups:
        ids = [result.pk for result in results]
        runner.start_training(ids, deployment_id=deployment.pk, gpus=deployment.gpus)


def _check_mode(training: TrainingSettings, groups: list[list[MLModel]]) -> None:
    if training.reader == "tfio" and any(m.framework != "tensorflow" for g in groups for m in g):
        raise ApplicationError(
            "The tfio reader serves TensorFlow models only.",
            {"fields": {"reader": ["a model is not TensorFlow"]}},
        )
    _check_target(training)
    models = sum(len(group) for group in groups)
    if training.mode == TrainingMode.FEDERATED and models > 1:
        # The workers and the coordinator meet on the deployment's exchange topics: a second
        # model's coordinator would take the first one's updates.
        raise ApplicationError(
            f"Federated training takes a configuration of one model; this one holds {models}.",
            {"fields": {"mode": ["one model per federated deployment"]}},
        )
    has_chain = any(len(group) > 1 for group in groups)
    if has_chain and training.mode != TrainingMode.DISTRIBUTED:
        raise ApplicationError(
            "The configuration holds a distributed chain: use mode 'distributed'.",
            {"fields": {"mode": ["distributed expected"]}},
        )
    if training.mode == TrainingMode.DISTRIBUTED and not has_chain:
        raise ApplicationError(
            "Mode 'distributed' needs a chain of distributed models.",
            {"fields": {"mode": ["no chain in the configuration"]}},
        )


# The modes whose jobs can train on the input as the target: the others need labels (an
# early-exit chain's exits and pseudo-labels are classes; federated workers send labeled data).
INPUT_TARGET_MODES = (TrainingMode.CLASSIC, TrainingMode.INCREMENTAL)


def _check_target(training: TrainingSettings) -> None:
    if training.target != TrainingTarget.INPUT:
        return
    if training.mode not in INPUT_TARGET_MODES:
        raise ApplicationError(
            f"Target 'input' trains on the input itself; mode '{training.mode}' needs labels.",
            {"fields": {"target": ["only with mode classic or incremental"]}},
        )
    if training.confusion_matrix:
        raise ApplicationError(
            "A confusion matrix needs class labels; target 'input' has none.",
            {"fields": {"confusion_matrix": ["not with target 'input'"]}},
        )


def deployment_delete(*, deployment: Deployment) -> None:
    """Delete a deployment, its results and their artifacts, unless a result serves an
    inference. The jobs of its active results are stopped first (those results become
    stopped), so no process outlives its rows."""
    for result in deployment.results.filter(status__in=ACTIVE):
        _stop_before_delete(result)
    names = [cast(str, r.artifact.name) for r in deployment.results.all() if r.artifact]
    try:
        with transaction.atomic():
            deployment.delete()
            transaction.on_commit(lambda: _delete_artifacts(names))
    except ProtectedError as error:
        raise ConflictError("A result of this deployment serves an inference.") from error


def _stop_before_delete(result: TrainingResult) -> None:
    with transaction.atomic():
        locked = _locked(result.pk)
        if locked.status in ACTIVE:
            locked.status = ResultStatus.STOPPED
            locked.finished_at = timezone.now()
            locked.save(update_fields=["status", "finished_at"])
    get_runner().stop_training(locked.pk)


def _delete_artifacts(names: Sequence[str]) -> None:
    storage = artifact_storage()
    for name in names:
        storage.delete(name)


def _locked(result_id: int) -> TrainingResult:
    try:
        return TrainingResult.objects.select_for_update().select_related("model").get(pk=result_id)
    except TrainingResult.DoesNotExist as error:
        raise NotFoundError("Training result not found.", {"id": result_id}) from error


def _refuse(result: TrainingResult, action: str) -> ConflictError:
    return ConflictError(
        f"Cannot {action} a result that is {result.status}.", {"status": result.status}
    )


def result_mark_running(*, result_id: int) -> TrainingResult:
    """created -> running (a job started); repeating it while running changes nothing."""
    with transaction.atomic():
        result = _locked(result_id)
        if result.status == ResultStatus.RUNNING:
            return result
        if result.status != ResultStatus.CREATED:
            raise _refuse(result, "start")
        result.status = ResultStatus.RUNNING
        result.started_at = timezone.now()
        result.save(update_fields=["status", "started_at"])
    return result


def result_record_epoch(
    *, result_id: int, epoch: int, train: dict[str, float], validation: dict[str, float]
) -> TrainingResult:
    """Record one epoch's metrics of a running result; a repeated epoch replaces the earlier."""
    with transaction.atomic():
        result = _locked(result_id)
        if result.status != ResultStatus.RUNNING:
            raise _refuse(result, "record metrics of")
        epochs = [e for e in result.epochs if e["epoch"] != epoch]
        epochs.append({"epoch": epoch, "train": train, "validation": validation})
        epochs.sort(key=lambda e: e["epoch"])
        result.epochs = epochs
        result.train_metrics = _per_metric(e["train"] for e in epochs)
        result.validation_metrics = _per_metric(e["validation"] for e in epochs)
        result.save(update_fields=["epochs", "train_metrics", "validation_metrics"])
    return result


def _per_metric(rows: Iterable[dict[str, float]]) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {}
    for row in rows:
        for metric, value in row.items():
            series.setdefault(metric, []).append(value)
    return series


def result_finish(
    *,
    result_id: int,
    artifact: File[bytes],
    metrics: dict[str, Any],
    artifact_format: str | None = None,
) -> TrainingResult:
    """running -> finished: store the trained artifact and the final metrics."""
    with transaction.atomic():
        result = _locked(result_id)
        if result.status != ResultStatus.RUNNING:
            raise _refuse(result, "finish")
        fmt = artifact_format or DEFAULT_ARTIFACT_FORMAT[result.model.framework]
        result.artifact.save(
            f"{result.pk}.{ARTIFACT_SUFFIX[ArtifactFormat(fmt)]}", artifact, save=False
        )
        result.artifact_format = fmt
        result.train_metrics = metrics.get("train") or result.train_metrics
        result.validation_metrics = metrics.get("validation") or result.validation_metrics
        result.test_metrics = metrics.get("test") or {}
        result.confusion_matrix = metrics.get("confusion_matrix")
        result.training_time_s = metrics.get("training_time_s")
        result.status = ResultStatus.FINISHED
        result.finished_at = timezone.now()
        result.save()
    return result


def result_snapshot(
    *,
    result_id: int,
    artifact: File[bytes],
    metrics: dict[str, Any],
    artifact_format: str | None = None,
) -> TrainingResult:
    """Store an intermediate model of a running result (indefinite incremental training) as a
    new finished result of the same deployment and model, deployable on its own."""
    with transaction.atomic():
        parent = _locked(result_id)
        if parent.status != ResultStatus.RUNNING:
            raise _refuse(parent, "snapshot")
        fmt = artifact_format or DEFAULT_ARTIFACT_FORMAT[parent.model.framework]
        snapshot = TrainingResult.objects.create(
            owner_id=parent.owner_id,
            deployment_id=parent.deployment_id,
            model=parent.model,
            snapshot_of=parent,
            status=ResultStatus.FINISHED,
            artifact_format=fmt,
            started_at=parent.started_at,
            finished_at=timezone.now(),
            train_metrics=metrics.get("train") or {},
            validation_metrics=metrics.get("validation") or {},
            test_metrics=metrics.get("test") or {},
            confusion_matrix=metrics.get("confusion_matrix"),
            training_time_s=metrics.get("training_time_s"),
        )
        suffix = ARTIFACT_SUFFIX[ArtifactFormat(fmt)]
        snapshot.artifact.save(f"{snapshot.pk}.{suffix}", artifact, save=True)
    return snapshot


def result_fail(*, result_id: int, reason: str) -> TrainingResult:
    """created | running -> failed with the reason; repeating it while failed changes nothing."""
    with transaction.atomic():
        result = _locked(result_id)
        if result.status == ResultStatus.FAILED:
            return result
        if result.status not in (ResultStatus.CREATED, ResultStatus.RUNNING):
            raise _refuse(result, "fail")
        result.status = ResultStatus.FAILED
        result.error = reason
        result.finished_at = timezone.now()
        result.save(update_fields=["status", "error", "finished_at"])
    return result


def result_fail_if_active(*, result_id: int, reason: str) -> TrainingResult | None:
    """created | running -> failed with the reason; a result in another status, or none, is
    left alone (a runner may report a job's end after a stop, a finish or a delete)."""
    with transaction.atomic():
        result = TrainingResult.objects.select_for_update().filter(pk=result_id).first()
        if result is None or result.status not in ACTIVE:
            return result
        return result_fail(result_id=result_id, reason=reason)


class RunnerListener:
    """What the training app does with a runner's reports (`runners.events.ResultListener`);
    registered by `TrainingConfig.ready`."""

    def result_failed(self, result_id: int, reason: str) -> None:
        result_fail_if_active(result_id=result_id, reason=reason)


def result_stop(*, result: TrainingResult) -> TrainingResult:
    """created | running -> stopped; the runner stops the job after the commit."""
    with transaction.atomic():
        locked = _locked(result.pk)
        if locked.status not in (ResultStatus.CREATED, ResultStatus.RUNNING):
            raise _refuse(locked, "stop")
        locked.status = ResultStatus.STOPPED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
        transaction.on_commit(lambda: get_runner().stop_training(locked.pk))
    return locked


def _chained_keras(model: MLModel) -> bool:
    return bool(model.distributed) and model.framework == "tensorflow"


def result_delete(*, result: TrainingResult) -> None:
    """Delete a result that serves no inference, and its artifacts; its job is stopped first."""
    if result.status in ACTIVE:
        _stop_before_delete(result)
    names = [
        cast(str, file.name)  # a FieldFile is true only when it has a name
        for r in (result, *result.snapshots.all())
        for file in (r.artifact, r.onnx_artifact)
        if file
    ]
    try:
        with transaction.atomic():
            result.delete()
            transaction.on_commit(lambda: _delete_artifacts(names))
    except ProtectedError as error:
        raise ConflictError("The result serves an inference; delete that first.") from error


def result_onnx_artifact(*, result: TrainingResult) -> File[bytes]:
    """The result's trained model as ONNX: converted by the executor on the first request (user
    code runs there, never here) and kept, so later requests only read it.

    Raises NotFoundError while the result has no trained model, ApplicationError when the
    model cannot be converted, ServiceUnavailableError when the executor cannot run.
    """
    if not result.artifact:
        raise NotFoundError("The result has no trained model yet.", {"status": result.status})
    if result.artifact_format == ArtifactFormat.ONNX:
        return result.artifact
    if result.onnx_artifact:
        return result.onnx_artifact
    with result.artifact.open("rb") as stored:
        content = stored.read()
    onnx = executor.export_onnx(
        framework=result.model.framework,
        artifact=content,
        artifact_format=result.artifact_format,
        imports=result.model.imports,
        code=result.model.code,
    )
    with transaction.atomic():
        locked = TrainingResult.objects.select_for_update().get(pk=result.pk)
        if not locked.onnx_artifact:  # a concurrent request may have converted it meanwhile
            locked.onnx_artifact.save(f"{locked.pk}.onnx", ContentFile(onnx), save=False)
            locked.save(update_fields=["onnx_artifact"])
    return locked.onnx_artifact


def result_import(
    *,
    owner: User,
    name: str,
    framework: str,
    artifact: File[bytes],
    artifact_format: str,
    imports: str = "",
    code: str = "",
    description: str = "",
) -> TrainingResult:
    """Import a trained model: the executor loads it, then it is stored as a model with a
    finished result (no deployment) that can be deployed for inference."""
    content = artifact.read()
    artifact.seek(0)
    summary = executor.validate_artifact(
        framework=framework,
        artifact=content,
        artifact_format=artifact_format,
        imports=imports,
        code=code,
    )
    with transaction.atomic():
        model = model_create_validated(
            owner=owner,
            name=name,
            framework=framework,
            imports=imports,
            code=code,
            description=description,
            summary=summary,
        )
        result = TrainingResult.objects.create(
            owner=owner,
            model=model,
            status=ResultStatus.FINISHED,
            artifact_format=artifact_format,
            finished_at=timezone.now(),
        )
        suffix = ARTIFACT_SUFFIX[ArtifactFormat(artifact_format)]
        result.artifact.save(f"{result.pk}.{suffix}", artifact, save=True)
    return result
