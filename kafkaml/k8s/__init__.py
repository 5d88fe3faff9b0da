"""Run kafkaml's training jobs and inferences on Kubernetes, from plain typed specs.

Knows nothing of Django: the backend turns its models into `TrainingJobSpec` / `InferenceSpec`,
starts them with `KubernetesRunner`, and wires `Reconciler(on_failed=...)` to its services.
"""

from kafkaml.k8s.errors import (
    KubernetesApiError,
    RunnerError,
    RunnerPermissionError,
    SpecError,
    WorkloadNotFoundError,
    WorkloadTerminatingError,
)
from kafkaml.k8s.reconciler import FailureCallback, Reconciler
from kafkaml.k8s.runner import KubernetesRunner, WorkloadState, WorkloadStatus, load_api_client
from kafkaml.k8s.settings import KubernetesRunnerSettings
from kafkaml.k8s.specs import (
    HttpProbe,
    InferenceSpec,
    PodOptions,
    Resources,
    TrainingJobSpec,
    WorkloadKind,
)

__all__ = [
    "FailureCallback",
    "HttpProbe",
    "InferenceSpec",
    "KubernetesApiError",
    "KubernetesRunner",
    "KubernetesRunnerSettings",
    "PodOptions",
    "Reconciler",
    "Resources",
    "RunnerError",
    "RunnerPermissionError",
    "SpecError",
    "TrainingJobSpec",
    "WorkloadKind",
    "WorkloadNotFoundError",
    "WorkloadState",
    "WorkloadStatus",
    "WorkloadTerminatingError",
    "load_api_client",
]
