"""One row per (job object, process) that the local runner started.

A training chain runs in one process for several results: each result has its own row with the
same pid. An inference has one row per replica. A row whose `ended_at` is unset is a process the
backend believes alive; the reconciler checks that belief against the operating system.
"""

from __future__ import annotations

from django.db import models


class ProcessKind(models.TextChoices):
    RESULT = "result"
    INFERENCE = "inference"


class JobProcess(models.Model):
    """A local child process behind a training result or one replica of an inference."""

    kind = models.CharField(max_length=10, choices=ProcessKind.choices)
    object_id = models.BigIntegerField()
    replica = models.PositiveIntegerField(default=0)
    pid = models.PositiveIntegerField()
    # The launch's marker (`kafkaml.sandbox.Launch.marker`), in the environment of each of its
    # processes: tells them from processes that reuse their pids. "" on rows from before it.
    launch_marker = models.CharField(max_length=64, blank=True, default="")
    log_path = models.CharField(max_length=1000)
    started_at = models.DateTimeField(auto_now_add=True)
    stop_requested = models.BooleanField(default=False)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    end_reason = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["kind", "object_id"])]
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} replica {self.replica}: pid {self.pid}"
