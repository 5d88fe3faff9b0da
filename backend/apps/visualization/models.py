"""How an inference's predictions are drawn live (Kafka-ML's visualization configuration)."""

from __future__ import annotations

from django.db import models

from backend.apps.inferences.models import Inference


class VisualizationType(models.TextChoices):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class Visualization(models.Model):
    """One per inference. `labels`: `[{"id": output position, "color": "#rrggbb", "label": str}]`.

    Classification: the class is the argmax of `values`; with `average_updated` the shown class
    is the most frequent one of the last `average_window` predictions. Regression: one line per
    label id (the index into `values`).
    """

    inference = models.OneToOneField(
        Inference, on_delete=models.CASCADE, related_name="visualization"
    )
    type = models.CharField(
        max_length=20, choices=VisualizationType.choices, default=VisualizationType.CLASSIFICATION
    )
    labels = models.JSONField(default=list)
    average_updated = models.BooleanField(default=False)
    average_window = models.PositiveIntegerField(default=10_000)
    updated_at = models.DateTimeField(auto_now=True)
