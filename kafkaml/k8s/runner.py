"""Start, scale, stop and read the logs of kafkaml workloads on Kubernetes.

`KubernetesRunner` is synchronous and stateless: everything it needs to find a workload again is in
the workload's labels, so a restarted backend picks up where the old one left. Creates are sent
with `fieldValidation=Strict` (an unknown field is an error, not silently dropped); a create that
answers 409 means an earlier call already created the object and counts as success; deletes
propagate in the background and a 404 means the object is already gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client import ApiClient, V1Deployment, V1Job, V1Pod
from kubernetes.client.exceptions import ApiException

from kafkaml.k8s import objects
from kafkaml.k8s.errors import (
    RunnerError,
    SpecError,
    WorkloadNotFoundError,
    WorkloadTerminatingError,
    api_error,
)
from kafkaml.k8s.specs import InferenceSpec, TrainingJobSpec, WorkloadKind

T = TypeVar("T")


class WorkloadState(StrEnum):
    """Where the workload behind a result or inference is, as far as Kubernetes knows."""

    NOT_STARTED = "not-started"
    RUNNING = "running"
    EXITED = "exited"


@dataclass(frozen=True)
class WorkloadStatus:
    """A workload's state and a one-line detail for people ("2/3 replicas ready")."""

    state: WorkloadState
    detail: str = ""


STRICT = "Strict"
BACKGROUND = "Background"


def load_api_client(kubeconfig: str | None = None) -> ApiClient:
    """An ApiClient for the cluster this process runs in, or for `kubeconfig` outside one.

    Raises RunnerError when neither an in-cluster service account nor a kubeconfig is found.
    """
    configuration = client.Configuration()
    # The config loaders carry no type annotations.
    load_incluster: Callable[..., None] = config.load_incluster_config
    load_kubeconfig: Callable[..., None] = config.load_kube_config
    try:
        if kubeconfig is None:
            load_incluster(client_configuration=configuration)
        else:
            load_kubeconfig(config_file=kubeconfig, client_configuration=configuration)
    except config.ConfigException as error:
        raise RunnerError(f"no Kubernetes configuration: {error}") from error
    return ApiClient(configuration)


class KubernetesRunner:
    """The workloads of one namespace. Every method raises a `RunnerError` subclass on failure."""

    def __init__(self, api_client: ApiClient, *, namespace: str) -> None:
        self.namespace = namespace
        self._batch = client.BatchV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    def start_training(self, spec: TrainingJobSpec) -> str:
        """Create the Job for `spec` and its token Secret; return the Job's name.

        Idempotent: starting a job that already exists changes nothing. Success means the API
        server accepted the Job, not that a pod is scheduled or running. Raises
        WorkloadTerminatingError while a Job of the same name is still being deleted. When the
        Secret cannot be created, the Job is deleted again before the error is raised.
        """
        job = objects.build_training_job(spec, self.namespace)
        # The Secret comes second so that it can be owned by the Job; the kubelet holds the pod
        # (CreateContainerConfigError, retried) until the Secret exists, moments later.
        uid = self._create_owner(job, self._batch.create_namespaced_job, self._read_job)
        secret = objects.build_token_secret(job, spec.job_token, uid)
        self._create_secret_or_undo(secret, job, self._batch.delete_namespaced_job)
        return objects.training_job_name(spec)

    def stop_training(self, result_id: int) -> list[str]:
        """Delete the Job(s) training `result_id` (their pods go with them); return the names of
        those this call deleted. A result with no Job (never started, already cleaned up, deleted
        concurrently) is not an error.
        """
        jobs = self._list("jobs", self._batch.list_namespaced_job, WorkloadKind.RESULT, result_id)
        names = [str(objects.metadata_of(job).name) for job in jobs]
        return [
            name for name in names if self._delete("jobs", self._batch.delete_namespaced_job, name)
        ]

    def start_inference(self, spec: InferenceSpec) -> str:
        """Create the Deployment for `spec` and its token Secret; return the Deployment's name.

        Idempotent like `start_training`, with the same errors; an existing Deployment keeps its
        replica count.
        """
        deployment = objects.build_inference_deployment(spec, self.namespace)
        create = self._apps.create_namespaced_deployment
        uid = self._create_owner(deployment, create, self._read_deployment)
        secret = objects.build_token_secret(deployment, spec.job_token, uid)
        self._create_secret_or_undo(secret, deployment, self._apps.delete_namespaced_deployment)
        return objects.inference_name(spec.inference_id)

    def scale_inference(self, inference_id: int, replicas: int) -> None:
        """Set the replica count of a running inference through its scale subresource.

        Raises WorkloadNotFoundError when the inference has no Deployment.
        """
        if replicas < 0:
            raise SpecError("must be 0 or more", field="replicas")
        name = objects.inference_name(inference_id)
        body = {"spec": {"replicas": replicas}}
        try:
            self._apps.patch_namespaced_deployment_scale(name, self.namespace, body)
        except ApiException as error:
            if error.status == 404:
                raise WorkloadNotFoundError("inference", inference_id, "Deployment") from error
            raise api_error(error, "patch", "deployments/scale") from error

    def stop_inference(self, inference_id: int) -> bool:
        """Delete an inference's Deployment; its pods and Secret follow. False if none existed."""
        name = objects.inference_name(inference_id)
        return self._delete("deployments", self._apps.delete_namespaced_deployment, name)

    def status(self, kind: WorkloadKind, object_id: int) -> WorkloadStatus:
        """What Kubernetes knows of the workload behind a result or an inference.

        A result's Job is EXITED once it completed or failed (the detail says which and why) and
        RUNNING before; an inference's Deployment is RUNNING while it exists. No workload (never
        started, stopped, or removed after its TTL) is NOT_STARTED.
        """
        if kind is WorkloadKind.RESULT:
            jobs = self._list("jobs", self._batch.list_namespaced_job, kind, object_id)
            if not jobs:
                return WorkloadStatus(WorkloadState.NOT_STARTED, "no Job")
            return _job_status(max(jobs, key=_age_order))
        name = objects.inference_name(object_id)
        try:
            deployment = self._apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return WorkloadStatus(WorkloadState.NOT_STARTED, "no Deployment")
            raise api_error(error, "get", "deployments") from error
        return _deployment_status(deployment)

    def logs(self, kind: WorkloadKind, object_id: int, tail_lines: int = 200) -> str:
        """The last `tail_lines` lines of a result's newest pod, or of each inference replica.

        Replicas' logs are concatenated, each under a `==> <pod name> <==` line. A container that
        has not started yet contributes one line saying why it waits (unschedulable, pulling its
        image, ...). Raises WorkloadNotFoundError when no pod exists.
        """
        if tail_lines < 1:
            raise SpecError("must be 1 or more", field="tail_lines")
        pods = self._list("pods", self._core.list_namespaced_pod, kind, object_id)
        pods.sort(key=_age_order)
        if not pods:
            raise WorkloadNotFoundError(kind.value, object_id, "pod")
        if kind is WorkloadKind.RESULT:
            return self._pod_log(pods[-1], tail_lines)
        parts = [f"==> {_name(pod)} <==\n{self._pod_log(pod, tail_lines)}" for pod in pods]
        return "\n".join(parts)

    def _create_owner(
        self,
        body: V1Job | V1Deployment,
        create: Callable[..., Any],
        read: Callable[[str], V1Job | V1Deployment],
    ) -> str | None:
        """Create `body`, or find it already there (409); return its uid."""
        resource = _resource(body)
        try:
            created = create(self.namespace, body, field_validation=STRICT)
        except ApiException as error:
            if error.status != 409:
                raise api_error(error, "create", resource) from error
            created = read(_name(body))
            if objects.metadata_of(created).deletion_timestamp is not None:
                raise WorkloadTerminatingError(resource, _name(body)) from error
        return objects.metadata_of(created).uid

    def _read_job(self, name: str) -> V1Job:
        return _call("get", "jobs", self._batch.read_namespaced_job, name, self.namespace)

    def _read_deployment(self, name: str) -> V1Deployment:
        read = self._apps.read_namespaced_deployment
        return _call("get", "deployments", read, name, self.namespace)

    def _create_secret_or_undo(
        self,
        secret: client.V1Secret,
        owner: V1Job | V1Deployment,
        delete_owner: Callable[..., Any],
    ) -> None:
        """Create the token Secret; on failure delete its owner, whose pods could never start."""
        try:
            self._core.create_namespaced_secret(self.namespace, secret, field_validation=STRICT)
        except ApiException as error:
            if error.status == 409:
                return
            self._delete(_resource(owner), delete_owner, _name(owner))
            raise api_error(error, "create", "secrets") from error

    def _delete(self, resource: str, delete: Callable[..., Any], name: str) -> bool:
        try:
            delete(name, self.namespace, propagation_policy=BACKGROUND)
        except ApiException as error:
            if error.status == 404:
                return False
            raise api_error(error, "delete", resource) from error
        return True

    def _list(
        self,
        resource: str,
        list_fn: Callable[..., Any],
        kind: WorkloadKind,
        object_id: int,
    ) -> list[Any]:
        label_selector = objects.selector(kind, object_id)
        answer = _call("list", resource, list_fn, self.namespace, label_selector=label_selector)
        return list(answer.items)

    def _pod_log(self, pod: V1Pod, tail_lines: int) -> str:
        name = _name(pod)
        try:
            return str(
                self._core.read_namespaced_pod_log(
                    name, self.namespace, container=objects.CONTAINER_NAME, tail_lines=tail_lines
                )
            )
        except ApiException as error:
            # 400: the container has not started yet; 404: the pod just went away.
            if error.status == 400:
                return f"(no logs yet: {waiting_reason(pod)})\n"
            if error.status == 404:
                return ""
            raise api_error(error, "get", "pods/log") from error


def _call(verb: str, resource: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except ApiException as error:
        raise api_error(error, verb, resource) from error


def waiting_reason(pod: V1Pod) -> str:
    """Why `pod` is not running, from its status: a waiting container's reason and message, an
    unschedulable pod's scheduler message, or else its phase."""
    status = pod.status
    for container in (status.container_statuses or []) if status else []:
        waiting = container.state.waiting if container.state else None
        if waiting is not None:
            return ": ".join(part for part in (waiting.reason, waiting.message) if part)
    for condition in (status.conditions or []) if status else []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return ": ".join(part for part in (condition.reason, condition.message) if part)
    return f"pod is {status.phase if status and status.phase else 'Pending'}"


def _resource(obj: V1Job | V1Deployment) -> str:
    """The plural resource name, as in RBAC rules and error messages: "jobs", "deployments"."""
    return f"{str(obj.kind).lower()}s"


def _name(obj: V1Job | V1Deployment | V1Pod) -> str:
    return str(objects.metadata_of(obj).name)


def _age_order(obj: V1Job | V1Pod) -> tuple[str, str]:
    # Oldest first; ISO timestamps order as strings, and an object not yet stamped sorts first.
    created = objects.metadata_of(obj).creation_timestamp
    return (created.isoformat() if created is not None else "", _name(obj))


def _job_status(job: V1Job) -> WorkloadStatus:
    status = job.status
    for condition in (status.conditions or []) if status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            why = ": ".join(part for part in (condition.reason, condition.message) if part)
            return WorkloadStatus(WorkloadState.EXITED, f"{condition.type} {why}".strip())
    active = status.active if status and status.active else 0
    return WorkloadStatus(WorkloadState.RUNNING, f"{active} active pod(s)")


def _deployment_status(deployment: V1Deployment) -> WorkloadStatus:
    wanted = deployment.spec.replicas if deployment.spec and deployment.spec.replicas else 0
    ready = deployment.status.ready_replicas if deployment.status else None
    return WorkloadStatus(WorkloadState.RUNNING, f"{ready or 0}/{wanted} replicas ready")
