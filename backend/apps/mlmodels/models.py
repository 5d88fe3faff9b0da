"""Model code and configurations (sets of models trained together)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Framework(models.TextChoices):
    TENSORFLOW = "tensorflow", "TensorFlow/Keras"
    PYTORCH = "pytorch", "PyTorch (Ignite)"


class MLModel(models.Model):
    """A model defined as code, stored only after the executor validated it.

    Distributed (early-exit) models form a chain through `upper`: edge.upper = fog,
    fog.upper = cloud. The top of a chain has no upper; each model has at most one lower tier.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ml_models"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    framework = models.CharField(max_length=20, choices=Framework.choices)
    imports = models.TextField(blank=True, default="")
    code = models.TextField(blank=True, default="")
    distributed = models.BooleanField(default=False)
    upper = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="lower"
    )
    # The executor's summary: input_shape, output_shape, params, layers.
    summary = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.framework})"


class Configuration(models.Model):
    """A set of models deployed together on the same data stream."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="configurations"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    ml_models = models.ManyToManyField(MLModel, related_name="configurations")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name
