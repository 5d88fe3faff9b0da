"""Run kafkaml's training jobs and inferences on Kubernetes, from plain typed specs.

Knows nothing of Django: the backend turns its models into `TrainingJobSpec` / `InferenceSpec`,
starts them with `KubernetesRunner`, and wires `Reconciler(on_failed=...)` to its services::

    settings = KubernetesRunnerSettings()              # KAFKAML_K8S_*
    api = load_api_client()                            # the pod's service account
    runner = KubernetesRunner(api, namespace=settings.namespace)
    runner.start_training(settings.training_job(
        result_ids=[7], deployment_id=3, job_token=token, gpus=0))
    runner.start_inference(settings.inference(inference_id=5, replicas=2, job_token=token))
    runner.status(WorkloadKind.RESULT, 7)              # WorkloadStatus(state, detail)
    runner.logs(WorkloadKind.INFERENCE, 5, tail_lines=100)

    reconciler = Reconciler(api, namespace=settings.namespace, on_failed=mark_failed,
                            on_health=record_replicas)  # ReplicaHealth(ready, restarts, ...)
    threading.Thread(target=reconciler.run, args=(stop_event,), daemon=True).start()
"""

from kafkaml.k8s.errors import (
    KubernetesApiError,
    RunnerError,
    RunnerPermissionError,
    SpecError,
    WorkloadNotFoundError,
    WorkloadTerminatingError,
)
from kafkaml.k8s.health import ReplicaHealth
from kafkaml.k8s.reconciler import FailureCallback, HealthCallback, Reconciler
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
    "HealthCallback",
    "HttpProbe",
    "InferenceSpec",
    "KubernetesApiError",
    "KubernetesRunner",
    "KubernetesRunnerSettings",
    "PodOptions",
    "Reconciler",
    "ReplicaHealth",
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
