"""Writes of inferences: create from a finished result, stop, scale, swap the model, delete.

Runner calls happen after the transaction commits, so replicas never see a rolled-back row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

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
    *, owner: AbstractBaseUser, result: TrainingResult, settings: InferenceSettings
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
        transaction.on_commit(lambda: get_runner().start_inference(inference))
    return inference


def _locked(inference_id: int) -> Inference:
    return Inference.objects.select_for_update().get(pk=inference_id)


def inference_stop(*, inference: Inference) -> Inference:
    """created | running -> stopped; the runner stops the replicas after the commit."""
    with transaction.atomic():
        locked = _locked(inference.pk)
        if locked.status not in ACTIVE:
            raise ConflictError(
                f"Cannot stop an inference that is {locked.status}.", {"status": locked.status}
            )
        locked.status = InferenceStatus.STOPPED
        locked.save(update_fields=["status", "updated_at"])
        transaction.on_commit(lambda: get_runner().stop_inference(locked))
    return locked


def inference_fail(*, inference_id: int, reason: str) -> Inference:
    """created | running -> failed with `reason` (a replica ended on its own); otherwise nothing.

    Idempotent: the runner may report the end of several replicas of one inference.
    """
    with transaction.atomic():
        locked = _locked(inference_id)
        if locked.status not in ACTIVE:
            return locked
        locked.status = InferenceStatus.FAILED
        locked.error = reason
        locked.save(update_fields=["status", "error", "updated_at"])
    return locked


def inference_scale(*, inference: Inference, replicas: int) -> Inference:
    """Run `replicas` replicas of an active inference."""
    with transaction.atomic():
        locked = _locked(inference.pk)
        if locked.status not in ACTIVE:
            raise ConflictError(
                f"Cannot scale an inference that is {locked.status}.", {"status": locked.status}
            )
        locked.replicas = replicas
        locked.save(update_fields=["replicas", "updated_at"])
        transaction.on_commit(lambda: get_runner().scale_inference(locked, replicas))
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
        transaction.on_commit(lambda: get_runner().swap_inference_model(locked))
    return locked


def inference_delete(*, inference: Inference) -> None:
    """Delete an inference that is stopped or failed."""
    if inference.status in ACTIVE:
        raise ConflictError("Stop the inference before deleting it.", {"status": inference.status})
    inference.delete()
