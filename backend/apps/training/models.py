"""Training deployments and their results."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models

from backend.apps.mlmodels.models import Configuration, MLModel


def artifact_storage() -> Storage:
    """Where model artifacts live (STORAGES["artifacts"]: the data dir, or an object store)."""
    return storages["artifacts"]


class TrainingMode(models.TextChoices):
    CLASSIC = "classic"
    INCREMENTAL = "incremental"
    DISTRIBUTED = "distributed"
    SEMI_SUPERVISED = "semi-supervised"
    FEDERATED = "federated"


class TrainingTarget(models.TextChoices):
    LABEL = "label"
    INPUT = "input"


class Deployment(models.Model):
    """A configuration deployed for training with one set of training settings.

    The mode-specific settings are JSON objects validated by the API (see apis.py); nothing in
    them is ever evaluated as code.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deployments"
    )
    configuration = models.ForeignKey(
        Configuration, on_delete=models.PROTECT, related_name="deployments"
    )
    description = models.TextField(blank=True, default="")
    mode = models.CharField(
        max_length=20, choices=TrainingMode.choices, default=TrainingMode.CLASSIC
    )
    batch_size = models.PositiveIntegerField()
    # Keyword arguments of Keras fit / Ignite run (epochs, shuffle, ...) and of evaluation.
    fit_kwargs = models.JSONField(default=dict)
    eval_kwargs = models.JSONField(default=dict)
    gpus = models.PositiveSmallIntegerField(default=0)
    # How jobs read the training data: kafkaml's own reader, or tensorflow-io (TensorFlow only).
    reader = models.CharField(
        max_length=10, choices=[("native", "native"), ("tfio", "tfio")], default="native"
    )
    confusion_matrix = models.BooleanField(default=False)
    # What the models learn to output: the record's label, or the input itself (autoencoders).
    target = models.CharField(max_length=10, choices=TrainingTarget.choices, default="label")
    incremental = models.JSONField(null=True, blank=True)
    distributed = models.JSONField(null=True, blank=True)
    semi_supervised = models.JSONField(null=True, blank=True)
    federated = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class ResultStatus(models.TextChoices):
    CREATED = "created"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


class ArtifactFormat(models.TextChoices):
    KERAS = "keras"
    PYTORCH = "pytorch"
    ONNX = "onnx"


class TrainingResult(models.Model):
    """The training of one model in one deployment: status, metrics, and the trained artifact.

    Status moves created -> running -> finished | failed | stopped (created may also fail or
    stop). An imported trained model is a finished result without a deployment.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="training_results"
    )
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="results"
    )
    model = models.ForeignKey(MLModel, on_delete=models.PROTECT)
    # Set on the results an indefinite incremental job uploads each time its metric improved.
    snapshot_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="snapshots"
    )
    status = models.CharField(
        max_length=20, choices=ResultStatus.choices, default=ResultStatus.CREATED
    )
    # [{"epoch": n, "train": {metric: v}, "validation": {metric: v}}], as the job reported them.
    epochs = models.JSONField(default=list)
    train_metrics = models.JSONField(default=dict)
    validation_metrics = models.JSONField(default=dict)
    test_metrics = models.JSONField(default=dict)
    confusion_matrix = models.JSONField(null=True, blank=True)
    training_time_s = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    artifact = models.FileField(
        storage=artifact_storage, upload_to="results/", null=True, blank=True, max_length=300
    )
    artifact_format = models.CharField(
        max_length=20, choices=ArtifactFormat.choices, blank=True, default=""
    )
    # The artifact converted to ONNX on its first download in that format, then kept.
    onnx_artifact = models.FileField(
        storage=artifact_storage, upload_to="results/", null=True, blank=True, max_length=300
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
