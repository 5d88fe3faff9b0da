"""Writes of federated workers: register one (its credential shown once), revoke it, join."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from backend.apps.federated.models import FederatedMembership, FederatedWorker
from backend.apps.federated.selectors import ACTIVE, dataset_misfit, deployment_matches
from backend.apps.training.models import TrainingMode, TrainingResult
from backend.kafkaml_backend.errors import ApplicationError, NotFoundError
from backend.kafkaml_backend.validation import ID_MAX
from kafkaml.federated import credential_hash, credential_new, signing_key


def worker_register(
    *, owner: User, name: str, datasets: Sequence[dict[str, Any]]
) -> tuple[FederatedWorker, str]:
    """A new worker of `owner` and its credential, which is returned here only (the backend
    keeps its hash and the signing key derived from it). Raises ApplicationError when two
    datasets share a name."""
    names = [dataset["name"] for dataset in datasets]
    if len(set(names)) != len(names):
        raise ApplicationError(
            "Each dataset of a worker needs its own name.",
            {"fields": {"datasets": ["Dataset names repeat."]}},
        )
    worker_id, credential = credential_new()
    worker = FederatedWorker.objects.create(
        owner=owner,
        name=name,
        worker_id=worker_id,
        datasets=list(datasets),
        credential_hash=credential_hash(credential),
        signing_key=signing_key(credential).hex(),
    )
    return worker, credential


def worker_revoke(*, worker: FederatedWorker) -> FederatedWorker:
    """Revoke the worker's credential (at once: its API calls are refused, and coordinators
    take no update from it from their next round on). Revoking twice changes nothing."""
    with transaction.atomic():
        locked = FederatedWorker.objects.select_for_update().get(pk=worker.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    return locked


def worker_join(*, worker: FederatedWorker, deployment_id: int) -> FederatedMembership:
    """The worker takes part in the deployment with its first dataset that fits.

    Raises NotFoundError when the deployment is not one of the owner's federated deployments
    still training, ApplicationError (400, with each dataset's reason) when no dataset fits.
    """
    match = next((m for m in deployment_matches(worker=worker) if m.deployment.pk == deployment_id),
                 None)  # fmt: skip
    if match is None:
        raise _misfit(worker, deployment_id)
    membership, _ = FederatedMembership.objects.get_or_create(
        worker=worker, deployment=match.deployment, defaults={"dataset": match.dataset}
    )
    return membership


def _misfit(worker: FederatedWorker, deployment_id: int) -> ApplicationError:
    if not 0 < deployment_id <= ID_MAX:  # no such id; beyond it, a column overflows
        return _no_deployment(deployment_id)
    result = (
        TrainingResult.objects.select_related("deployment", "model")
        .filter(
            owner=worker.owner,
            deployment_id=deployment_id,
            deployment__mode=TrainingMode.FEDERATED,
            status__in=ACTIVE,
        )
        .first()
    )
    if result is None or result.deployment is None:
        return _no_deployment(deployment_id)
    shape = result.model.summary.get("input_shape") or []
    reasons = {
        str(d["name"]): dataset_misfit(d, shape, result.deployment.federated or {})
        for d in worker.datasets
    }
    return ApplicationError(
        "None of the worker's datasets fits this deployment.", {"datasets": reasons}
    )


def _no_deployment(deployment_id: int) -> NotFoundError:
    return NotFoundError(
        "No federated deployment of the worker's owner is training with this id.",
        {"id": deployment_id},
    )
