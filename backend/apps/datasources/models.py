"""Datasources: the control messages that announced training data streams, as recorded."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.apps.training.models import Deployment


class Datasource(models.Model):
    """One control message of the control topic, recorded for the deployment it names.

    (control_topic, partition, offset) identifies the Kafka record, so recording the same
    record twice stores one row. `message` is the control message value as on the wire.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasources"
    )
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="datasources")
    control_topic = models.CharField(max_length=255)
    partition = models.PositiveIntegerField()
    offset = models.PositiveBigIntegerField()
    topic = models.TextField(help_text="Topic ranges (name:partition:start:end, ...) or a topic.")
    input_format = models.CharField(max_length=10)
    input_config = models.JSONField(default=dict)
    description = models.TextField(blank=True, default="")
    validation_rate = models.FloatField(default=0.0)
    test_rate = models.FloatField(default=0.0)
    total_msg = models.PositiveBigIntegerField(null=True, blank=True)
    incremental = models.BooleanField(default=False)
    message = models.JSONField()
    sent_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["control_topic", "partition", "offset"], name="datasource_unique_record"
            ),
        ]
