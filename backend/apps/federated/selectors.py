"""Reads of federated workers: a user's own, what a worker's datasets fit, and who joined."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet

from backend.apps.federated.models import FederatedMembership, FederatedWorker
from backend.apps.training.models import Deployment, ResultStatus, TrainingMode, TrainingResult
from backend.kafkaml_backend.errors import NotFoundError
from kafkaml.federated import credential_hash

User = AuthUser | AnonymousUser  # request.user's type; the APIs let only authenticated users in
ACTIVE = (ResultStatus.CREATED, ResultStatus.RUNNING)


def worker_list(*, user: User) -> QuerySet[FederatedWorker]:
    workers = FederatedWorker.objects.all()
    return workers if user.is_staff else workers.filter(owner=cast(AuthUser, user))


def worker_get(*, user: User, worker_pk: int) -> FederatedWorker:
    """One visible worker; NotFoundError (404) otherwise."""
    try:
        return worker_list(user=user).get(pk=worker_pk)
    except FederatedWorker.DoesNotExist as error:
        raise NotFoundError("Federated worker not found.", {"id": worker_pk}) from error


def worker_by_credential(*, worker_id: str, credential: str) -> FederatedWorker | None:
    """The worker whose credential this is, revoked or not; None when there is none."""
    worker = FederatedWorker.objects.filter(worker_id=worker_id).first()
    if worker is None or not _same(worker.credential_hash, credential_hash(credential)):
        return None
    return worker


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def dataset_misfit(
    dataset: Mapping[str, Any], input_shape: Sequence[int | None], options: Mapping[str, Any]
) -> str | None:
    """Why a dataset does not fit a federated deployment, or None when it does: its samples'
    shape must be the model's input (batch dimension left out, None matching any size), every
    `data_restrictions` entry of the deployment must equal the dataset's, and it must hold at
    least `min_data` samples."""
    wanted = list(input_shape[1:])
    shape = list(dataset.get("input_shape") or [])
    if len(wanted) != len(shape) or any(
        w not in (None, s) for w, s in zip(wanted, shape, strict=True)
    ):
        return f"samples of shape {shape} do not fit the model's input {wanted}"
    own = dataset.get("dataset_restrictions") or {}
    differing = {
        k: v for k, v in (options.get("data_restrictions") or {}).items() if own.get(k) != v
    }
    if differing:
        return f"the dataset does not meet the restrictions {differing}"
    if int(dataset.get("samples", 0)) < int(options.get("min_data", 1)):
        return f"{dataset.get('samples')} samples, fewer than min_data {options.get('min_data')}"
    return None


@dataclass(frozen=True)
class Match:
    """A federated deployment that one of the worker's datasets fits."""

    deployment: Deployment
    result: TrainingResult
    dataset: str
    joined: bool


def deployment_matches(*, worker: FederatedWorker) -> list[Match]:
    """The owner's federated deployments still training (a result created or running) that one
    of the worker's datasets fits, the first fitting dataset for each, oldest first."""
    results = (
        TrainingResult.objects.select_related("deployment", "model")
        .filter(
            owner=worker.owner,
            deployment__mode=TrainingMode.FEDERATED,
            status__in=ACTIVE,
            snapshot_of__isnull=True,
        )
        .order_by("deployment_id", "id")
    )
    joined = set(worker.memberships.values_list("deployment_id", flat=True))
    matches: dict[int, Match] = {}
    for result in results:
        deployment = result.deployment
        if deployment is None or deployment.pk in matches:
            continue
        shape = result.model.summary.get("input_shape") or []
        options = deployment.federated or {}
        for dataset in worker.datasets:
            if dataset_misfit(dataset, shape, options) is None:
                matches[deployment.pk] = Match(
                    deployment, result, str(dataset["name"]), deployment.pk in joined
                )
                break
    return list(matches.values())


def deployment_members(*, deployment_id: int) -> QuerySet[FederatedWorker]:
    """The workers that joined the deployment and are not revoked."""
    return FederatedWorker.objects.filter(
        memberships__deployment_id=deployment_id, revoked_at__isnull=True
    ).order_by("id")


def membership_list(*, worker: FederatedWorker) -> QuerySet[FederatedMembership]:
    return worker.memberships.select_related("deployment")
