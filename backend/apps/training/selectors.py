"""Reads of deployments and training results, limited to what a user may see."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet

from backend.apps.training.models import Deployment, ResultStatus, TrainingResult
from backend.kafkaml_backend.errors import NotFoundError

User = AuthUser | AnonymousUser  # request.user's type; the APIs let only authenticated users in


def deployment_list(*, user: User) -> QuerySet[Deployment]:
    deployments = Deployment.objects.select_related("configuration").prefetch_related("results")
    return deployments if user.is_staff else deployments.filter(owner=cast(AuthUser, user))


def deployment_get(*, user: User, deployment_id: int) -> Deployment:
    """One visible deployment; NotFoundError (404) otherwise."""
    try:
        return deployment_list(user=user).get(pk=deployment_id)
    except Deployment.DoesNotExist as error:
        raise NotFoundError("Deployment not found.", {"id": deployment_id}) from error


def result_list(*, user: User, deployment_id: int | None = None) -> QuerySet[TrainingResult]:
    results = TrainingResult.objects.select_related("model", "deployment")
    if deployment_id is not None:
        results = results.filter(deployment_id=deployment_id)
    return results if user.is_staff else results.filter(owner=cast(AuthUser, user))


def result_get(*, user: User, result_id: int) -> TrainingResult:
    """One visible result; NotFoundError (404) otherwise."""
    try:
        return result_list(user=user).get(pk=result_id)
    except TrainingResult.DoesNotExist as error:
        raise NotFoundError("Training result not found.", {"id": result_id}) from error


def result_for_job(*, result_id: int) -> TrainingResult:
    """The result a job token names (the token was checked by the view's permission)."""
    try:
        return TrainingResult.objects.select_related("model", "deployment").get(pk=result_id)
    except TrainingResult.DoesNotExist as error:
        raise NotFoundError("Training result not found.", {"id": result_id}) from error


def result_ended_status(*, result_id: int) -> str | None:
    """The status of the result if it has ended (finished, failed or stopped), so its job
    token no longer works; None while it has not, or when there is no such result."""
    ended = [ResultStatus.FINISHED, ResultStatus.FAILED, ResultStatus.STOPPED]
    statuses = TrainingResult.objects.filter(pk=result_id, status__in=ended)
    return statuses.values_list("status", flat=True).first()
