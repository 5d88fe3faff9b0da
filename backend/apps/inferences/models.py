"""Streaming inference services of trained models."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.apps.training.models import TrainingResult


class InferenceStatus(models.TextChoices):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Delivery(models.TextChoices):
    """Transactions per batch (the outputs are read `read_committed`, each answer once), or
    none (any Kafka client reads the outputs; a replica crash may answer records twice)."""

    EXACTLY_ONCE = "exactly-once"
    AT_LEAST_ONCE = "at-least-once"


class Inference(models.Model):
    """A trained model served from an input topic to an output topic by N replicas.

    `result` is the model served now; swapping it changes `model_version`, which replicas
    compare to know they must reload. `ready_replicas`, `restarts` (replica exits nobody asked
    for, all replicas together) and `last_exit_reason` are what the runner last saw.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inferences"
    )
    result = models.ForeignKey(TrainingResult, on_delete=models.PROTECT, related_name="inferences")
    model_version = models.CharField(max_length=64)
    status = models.CharField(
        max_length=20, choices=InferenceStatus.choices, default=InferenceStatus.CREATED
    )
    replicas = models.PositiveIntegerField(default=1)
    input_format = models.CharField(max_length=10)
    input_config = models.JSONField(default=dict)
    input_topic = models.CharField(max_length=249)
    output_topic = models.CharField(max_length=249)
    input_bootstrap = models.CharField(max_length=1000, blank=True, default="")
    output_bootstrap = models.CharField(max_length=1000, blank=True, default="")
    upper_bootstrap = models.CharField(max_length=1000, blank=True, default="")
    upper_topic = models.CharField(max_length=249, blank=True, default="")
    limit = models.FloatField(null=True, blank=True)
    delivery = models.CharField(
        max_length=20, choices=Delivery.choices, default=Delivery.EXACTLY_ONCE
    )
    error = models.TextField(blank=True, default="")
    ready_replicas = models.PositiveIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    last_exit_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
