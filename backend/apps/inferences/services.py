"""Writes of inferences: create from a finished result, stop, scale, swap the model, delete.

Runner calls happen after the transaction commits, so replicas never see a rolled-back row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from backend.apps.inferences import selectors
from backend.apps.inferences.models import Delivery, Inference, InferenceStatus
from backend.apps.training.models import ResultStatus, TrainingResult
from backend.kafkaml_backend.errors import ApplicationError, ConflictError
from backend.kafkaml_backend.runners import get_runner

ACTIVE = (InferenceStatus.CREATED, InferenceStatus.RUNNING)


@dataclass(frozen=True)
class InferenceSettings:
    """Where an inference reads and writes, and how its input is decoded."""

    input_format: str
    input_topic: str
    output_topic: str
    input_config: dict[str, Any]
    replicas: int = 1
    input_bootstrap: str = ""
    output_bootstrap: str = ""
    upper_bootstrap: str = ""
    upper_topic: str = ""
    limit: float | None = None
    delivery: str = Delivery.EXACTLY_ONCE


def _model_version(result: TrainingResult, swap: int) -> str:
    return f"{result.pk}.{swap}"


def _require_finished(result: TrainingResult) -> None:
    if result.status != ResultStatus.FINISHED or not result.artifact:
        raise ConflictError(
            "Only a finished result with a trained model can be served.",
            {"result_id": result.pk, "status": result.status},
        )


def inference_create(
    *, owner: User, result: TrainingResult, settings: InferenceSettings
) -> Inference:
    """Store an inference of a finished result and start its replicas through the runner."""
    _require_finished(result)
    if settings.input_topic == settings.output_topic:
        raise ApplicationError(
            "The output topic must differ from the input topic.",
            {"fields": {"output_topic": ["same as input_topic"]}},
        )
    if bool(settings.upper_topic) != (settings.limit is not None):
        raise ApplicationError(
            "An early-exit tier needs both upper_topic and limit.",
            {"fields": {"limit": ["give upper_topic and limit together"]}},
        )
    with transaction.atomic():
        inference = Inference.objects.create(
            owner=owner, result=result, model_version=_model_version(result, 0), **vars(settings)
        )
        transaction.on_commit(
            lambda: get_runner().start_inference(inference.pk, inference.replicas)
        )
    return inference


def _locked(inference_id: int) -> Inference:
    return Inference.objects.select_for_update().get(pk=inference_id)


def inference_stop(*, inference: Inference) -> Inference:
    """created | running -> stopped; the runner stops the replicas after the commit.

    Whatever the status: a stopped or failed inference keeps its status, and the runner is
    asked again to end any replica left (a stop is how a person cleans up).
    """
    with transaction.atomic():
        locked = _locked(inference.pk)
        if locked.status in ACTIVE:
            locked.status = InferenceStatus.STOPPED
            locked.save(update_fields=["status", "updated_at"])
        transaction.on_commit(lambda: get_runner().stop_inference(locked.pk))
    return locked


def inference_fail(*, inference_id: int, reason: str) -> Inference | None:
    """created | running -> failed with `reason` (its replicas cannot run); otherwise nothing.

    Idempotent: the runner may report the end of several replicas of one inference. None when
    the inference is gone (deleted while a replica ended).
    """
    with transaction.atomic():
        try:
            locked = _locked(inference_id)
        except Inference.DoesNotExist:
            return None
        if locked.status not in ACTIVE:
            return locked
        locked.status = InferenceStatus.FAILED
        locked.error = reason
        locked.ready_replicas = 0
        locked.save(update_fields=["status", "error", "ready_replicas", "updated_at"])
    return locked


def inference_record_replicas(
    *, inference_id: int, ready: int, restarts: int | None = None, last_exit_reason: str = ""
) -> Inference | None:
    """Record what the runner sees of the replicas; the first ready replica makes a created
    inference running. `restarts` None leaves the count; an empty `last_exit_reason` leaves the
    reason. Changes only the health fields of an inference that is stopped or failed. None when
    the inference is gone.
    """
    with transaction.atomic():
        try:
            locked = _locked(inference_id)
        except Inference.DoesNotExist:
            return None
        fields = ["ready_replicas", "updated_at"]
        locked.ready_replicas = ready if locked.status in ACTIVE else 0
        if restarts is not None:
            locked.restarts = restarts
            fields.append("restarts")
        if last_exit_reason:
            locked.last_exit_reason = last_exit_reason
            fields.append("last_exit_reason")
        if locked.status == InferenceStatus.CREATED and ready > 0:
            locked.status = InferenceStatus.RUNNING
            fields.append("status")
        locked.save(update_fields=fields)
    return locked


class RunnerListener:
    """What the inferences app does with a runner's reports and tells a runner
    (`runners.events.InferenceListener`); registered by `InferencesConfig.ready`."""

    def inference_failed(self, inference_id: int, reason: str) -> None:
        inference_fail(inference_id=inference_id, reason=reason)

    def inference_replicas(
        self, inference_id: int, *, ready: int, restarts: int | None, last_exit_reason: str
    ) -> None:
        inference_record_replicas(
            inference_id=inference_id,
            ready=ready,
            restarts=restarts,
            last_exit_reason=last_exit_reason,
        )

    def active_replicas(self, inference_ids: Iterable[int]) -> dict[int, int]:
        return selectors.inference_active_replicas(inference_ids=inference_ids)

    def inference_brokers(self, inference_id: int) -> list[str]:
        return selectors.inference_own_brokers(inference_id=inference_id)


def inference_scale(*, inference: Inference, replicas: int) -> Inference:
    """Run `replicas` replicas of an active inference; a stopped or failed one only records
    the number (it starts nothing, and the runner is asked to end any replica left)."""
    with transaction.atomic():
        locked = _locked(inference.pk)
        locked.replicas = replicas
        locked.save(update_fields=["replicas", "updated_at"])
        if locked.status in ACTIVE:
            transaction.on_commit(lambda: get_runner().scale_inference(locked.pk, replicas))
        else:
            transaction.on_commit(lambda: get_runner().stop_inference(locked.pk))
    return locked


def inference_swap(*, inference: Inference, result: TrainingResult) -> Inference:
    """Serve `result`'s model instead; the model version changes and replicas reload it."""
    _require_finished(result)
    with transaction.atomic():
        locked = _locked(inference.pk)
        if locked.status not in ACTIVE:
            raise ConflictError(
                f"Cannot swap the model of an inference that is {locked.status}.",
                {"status": locked.status},
            )
        swap = int(locked.model_version.rsplit(".", 1)[-1]) + 1
        locked.result = result
        locked.model_version = _model_version(result, swap)
        locked.save(update_fields=["result", "model_version", "updated_at"])
        transaction.on_commit(lambda: get_runner().swap_inference_model(locked.pk))
    return locked


def inference_delete(*, inference: Inference) -> None:
    """Delete an inference whatever its status: its replicas are told to stop first (an active
    one is stopped), then the row goes."""
    with transaction.atomic():
        locked = _locked(inference.pk)
        if locked.status in ACTIVE:
            locked.status = InferenceStatus.STOPPED
            locked.save(update_fields=["status", "updated_at"])
    get_runner().stop_inference(locked.pk)
    locked.delete()
