"""Reads of inferences, limited to what a user may see."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet

from backend.apps.datasources.selectors import datasource_first_of_deployment
from backend.apps.inferences.models import Inference, InferenceStatus
from backend.apps.training.models import TrainingResult
from backend.kafkaml_backend.errors import NotFoundError

User = AuthUser | AnonymousUser  # request.user's type; the APIs let only authenticated users in


def inference_list(*, user: User) -> QuerySet[Inference]:
    inferences = Inference.objects.select_related("result", "result__model")
    return inferences if user.is_staff else inferences.filter(owner=cast(AuthUser, user))


def inference_get(*, user: User, inference_id: int) -> Inference:
    """One visible inference; NotFoundError (404) otherwise."""
    try:
        return inference_list(user=user).get(pk=inference_id)
    except Inference.DoesNotExist as error:
        raise NotFoundError("Inference not found.", {"id": inference_id}) from error


def inference_for_job(*, inference_id: int) -> Inference:
    """The inference a job token names (the view's permission checked the token)."""
    try:
        return Inference.objects.select_related("result", "result__model").get(pk=inference_id)
    except Inference.DoesNotExist as error:
        raise NotFoundError("Inference not found.", {"id": inference_id}) from error


def inference_defaults(*, result: TrainingResult) -> dict[str, Any]:
    """Input format and config to pre-fill an inference form for `result`.

    From the last inference of the result, else from the datasource its deployment trained on.
    A lower tier's upper model reads what the tier below forwards: float32 of its input shape.
    """
    previous = Inference.objects.filter(result=result).order_by("-id").first()
    if previous is not None:
        defaults: dict[str, Any] = {
            "input_format": previous.input_format,
            "input_config": dict(previous.input_config),
        }
    else:
        datasource = (
            datasource_first_of_deployment(deployment_id=result.deployment_id)
            if result.deployment_id
            else None
        )
        defaults = {
            "input_format": datasource.input_format if datasource else "RAW",
            "input_config": dict(datasource.input_config) if datasource else {},
        }
    if hasattr(result.model, "lower") and result.model.summary.get("input_shape"):
        shape = [d for d in result.model.summary["input_shape"] if d is not None]
        defaults = {
            "input_format": "RAW",
            "input_config": {
                **defaults["input_config"],
                "data_type": "float32",
                "data_reshape": " ".join(str(d) for d in shape),
            },
        }
    return defaults


def inference_ended_status(*, inference_id: int) -> str | None:
    """The status of the inference if it has ended (stopped or failed), so its job token no
    longer works; None while it has not, or when there is no such inference."""
    ended = [InferenceStatus.STOPPED, InferenceStatus.FAILED]
    statuses = Inference.objects.filter(pk=inference_id, status__in=ended)
    return statuses.values_list("status", flat=True).first()


def inference_active_replicas(*, inference_ids: Iterable[int]) -> dict[int, int]:
    """The replica count of each of `inference_ids` that is created or running (for the
    runners: which replicas they should keep up). Others and unknown ids are left out."""
    active = (InferenceStatus.CREATED, InferenceStatus.RUNNING)
    rows = Inference.objects.filter(pk__in=list(inference_ids), status__in=active)
    return {pk: replicas for pk, replicas in rows.values_list("pk", "replicas")}


def inference_own_brokers(*, inference_id: int) -> list[str]:
    """The bootstrap lists an inference sets for its own directions (input, output, upper)."""
    row = (
        Inference.objects.filter(pk=inference_id)
        .values_list("input_bootstrap", "output_bootstrap", "upper_bootstrap")
        .first()
    )
    return [servers for servers in row or () if servers]
