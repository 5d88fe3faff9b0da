"""Federated workers registered by users, and the federated deployments they joined."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.apps.training.models import Deployment


class FederatedWorker(models.Model):
    """A data owner's worker: its datasets' descriptions and its credential, kept as a hash.

    `signing_key` (hex) is derived one-way from the credential (`kafkaml.federated`): the
    coordinator job of a deployment the worker joined gets it to verify the worker's updates.
    Neither it nor the credential is ever shown to a user again. A revoked worker keeps its row
    (its name stays readable in logs) but authenticates nowhere and is given to no coordinator.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="federated_workers"
    )
    name = models.CharField(max_length=100)
    worker_id = models.CharField(max_length=32, unique=True)
    # [{"name", "input_shape": [int], "dataset_restrictions": {}, "samples": int}]
    datasets = models.JSONField(default=list)
    credential_hash = models.CharField(max_length=64)
    signing_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]


class FederatedMembership(models.Model):
    """A worker takes part in a federated deployment with one of its datasets."""

    worker = models.ForeignKey(
        FederatedWorker, on_delete=models.CASCADE, related_name="memberships"
    )
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="federated_memberships"
    )
    dataset = models.CharField(max_length=100)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["worker", "deployment"], name="one_membership_per_worker_and_deployment"
            )
        ]
