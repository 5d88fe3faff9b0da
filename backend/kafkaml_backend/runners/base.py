"""The runner interface and the one implementation that starts nothing.

Services call a runner inside `transaction.on_commit`, so a job never starts for a row that was
rolled back. A runner knows results and inferences by their ids only (it imports no app); it
reports what its jobs did through the listeners of `runners.events`. A runner starts jobs with
the job environment (`KAFKAML_BACKEND_URL`, `KAFKAML_JOB_TOKEN` from `issue_job_token`, the
Kafka settings); the jobs then move their own result or inference through the job API.
`LocalRunner` (runners/local.py) starts local child processes, `KubernetesBackendRunner`
(runners/kubernetes.py) Kubernetes Jobs and Deployments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class JobKind(StrEnum):
    """What a job runs for: a training result, or an inference."""

    RESULT = "result"
    INFERENCE = "inference"


@dataclass(frozen=True)
class JobStatus:
    """What the runner knows about a job: `state` is one of not-started, running, exited."""

    state: str
    detail: str = ""


class Runner(Protocol):
    """Starts, changes and stops the jobs behind training results and inferences."""

    def start_training(self, result_ids: Sequence[int], *, deployment_id: int, gpus: int) -> None:
        """Start one training job for `result_ids`: one result, or the results of one chain
        (edge to cloud) of deployment `deployment_id`. Returns once the job is submitted, not
        when it has started."""

    def stop_training(self, result_id: int) -> None:
        """Stop the job that trains the result; nothing when none is running."""

    def start_inference(self, inference_id: int, replicas: int) -> None:
        """Start `replicas` replicas of the inference."""

    def scale_inference(self, inference_id: int, replicas: int) -> None:
        """Run `replicas` replicas of a started inference."""

    def stop_inference(self, inference_id: int) -> None:
        """Stop every replica of the inference; nothing when none is running."""

    def swap_inference_model(self, inference_id: int) -> None:
        """Make the replicas load the inference's current model (its `model_version` changed)."""

    def status(self, kind: JobKind, object_id: int) -> JobStatus:
        """The runner's view of the job behind a result or inference."""

    def logs(self, kind: JobKind, object_id: int) -> str:
        """The job's recent log text ("" when there is none)."""


class NoRunner:
    """The runner of `KAFKAML_RUNNER=none`.

    It starts nothing: deployments' results and inferences stay in `created` until a job (or a
    person holding a job token) moves them through the job API. Stopping, scaling and swapping
    only change the database rows.
    """

    def start_training(self, result_ids: Sequence[int], *, deployment_id: int, gpus: int) -> None:
        return None

    def stop_training(self, result_id: int) -> None:
        return None

    def start_inference(self, inference_id: int, replicas: int) -> None:
        return None

    def scale_inference(self, inference_id: int, replicas: int) -> None:
        return None

    def stop_inference(self, inference_id: int) -> None:
        return None

    def swap_inference_model(self, inference_id: int) -> None:
        return None

    def status(self, kind: JobKind, object_id: int) -> JobStatus:
        return JobStatus(state="not-started", detail="KAFKAML_RUNNER is none: jobs are not run.")

    def logs(self, kind: JobKind, object_id: int) -> str:
        return ""


def get_runner() -> Runner:
    """The runner that `KAFKAML_RUNNER` names (`none`: `NoRunner`).

    `local`: `LocalRunner` (child processes); `kubernetes`:
    `KubernetesBackendRunner` (Jobs and Deployments). Raises ImproperlyConfigured for another
    name, and RunnerError (kafkaml.k8s) when the cluster's configuration is missing.
    """
    name = settings.KAFKAML.runner
    if name == "none":
        return NoRunner()
    if name == "local":
        # Imported here: the local runner needs the processes app's models loaded.
        from backend.kafkaml_backend.runners.local import LocalRunner

        return LocalRunner()
    if name == "kubernetes":
        from backend.kafkaml_backend.runners.kubernetes import (
            KubernetesBackendRunner,
            cluster_api_client,
        )

        return KubernetesBackendRunner(cluster_api_client())
    raise ImproperlyConfigured(f"KAFKAML_RUNNER={name!r} is not a runner: none, local, kubernetes")
