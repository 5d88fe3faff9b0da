"""The `kubernetes` runner: the backend's side of `kafkaml.k8s`.

Turns training results and inferences into `TrainingJobSpec` / `InferenceSpec` (pod settings
from `KAFKAML_K8S_*`), and reports what `kafkaml.k8s.Reconciler` sees to the result and
inference services: failures, and an inference's replica health (ready pods, restarts, the last
exit), so a pod restart leaves the inference running and a crash loop past
`KAFKAML_CRASH_LOOP_LIMIT` fails it, as on the local runner. A workload that Kubernetes refuses
to create leaves its result or inference failed with the reason, rather than an error in the
request that already committed the row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import lru_cache

from django.conf import settings
from django.db import close_old_connections, connection
from kubernetes.client import ApiClient

from backend.kafkaml_backend.auth import issue_job_token
from backend.kafkaml_backend.runners import events
from backend.kafkaml_backend.runners.base import JobKind, JobStatus
from kafkaml.k8s import (
    KubernetesRunner,
    KubernetesRunnerSettings,
    Reconciler,
    ReplicaHealth,
    RunnerError,
    WorkloadKind,
    WorkloadNotFoundError,
    load_api_client,
)

log = logging.getLogger(__name__)
LOG_TAIL_LINES = 200


@lru_cache(maxsize=1)
def cluster_api_client() -> ApiClient:
    """The API client of the backend's cluster: the pod's service account, or the kubeconfig
    that `KAFKAML_KUBECONFIG` names. Raises RunnerError when neither is found."""
    return load_api_client(settings.KAFKAML.kubeconfig)


class KubernetesBackendRunner:
    """Runs jobs as Kubernetes Jobs and Deployments in `k8s.namespace` (see kafkaml.k8s)."""

    def __init__(self, api_client: ApiClient, k8s: KubernetesRunnerSettings | None = None) -> None:
        self.k8s = k8s if k8s is not None else KubernetesRunnerSettings()
        self.runner = KubernetesRunner(api_client, namespace=self.k8s.namespace)

    def start_training(self, result_ids: Sequence[int], *, deployment_id: int, gpus: int) -> None:
        """One Job for `result_ids` (one result, or a chain edge first), one token per result."""
        ids = list(result_ids)
        spec = self.k8s.training_job(
            result_ids=ids,
            deployment_id=deployment_id,
            job_token=",".join(issue_job_token("result", pk) for pk in ids),
            gpus=gpus,
        )
        try:
            self.runner.start_training(spec)
        except RunnerError as error:
            for pk in ids:
                mark_failed(WorkloadKind.RESULT, pk, f"Kubernetes did not start the job: {error}")

    def stop_training(self, result_id: int) -> None:
        self.runner.stop_training(result_id)

    def start_inference(self, inference_id: int, replicas: int) -> None:
        spec = self.k8s.inference(
            inference_id=inference_id,
            replicas=replicas,
            job_token=issue_job_token("inference", inference_id),
        )
        try:
            self.runner.start_inference(spec)
        except RunnerError as error:
            reason = f"Kubernetes did not start the inference: {error}"
            mark_failed(WorkloadKind.INFERENCE, inference_id, reason)

    def scale_inference(self, inference_id: int, replicas: int) -> None:
        self.runner.scale_inference(inference_id, replicas)

    def stop_inference(self, inference_id: int) -> None:
        self.runner.stop_inference(inference_id)

    def swap_inference_model(self, inference_id: int) -> None:
        """Nothing to do: replicas poll their spec and load a new model version themselves."""
        return None

    def status(self, kind: JobKind, object_id: int) -> JobStatus:
        status = self.runner.status(WorkloadKind(kind.value), object_id)
        return JobStatus(state=str(status.state), detail=status.detail)

    def logs(self, kind: JobKind, object_id: int) -> str:
        try:
            return self.runner.logs(WorkloadKind(kind.value), object_id, tail_lines=LOG_TAIL_LINES)
        except WorkloadNotFoundError:
            return ""


def mark_failed(kind: WorkloadKind, object_id: int, reason: str) -> None:
    """The reconciler's callback: fail a result or inference that is still created or running.

    Idempotent, and quiet about objects that ended otherwise (finished, stopped: a stop deletes
    the Job, which the reconciler sees as a Job deleted before it finished) or were deleted.
    """
    close_old_connections()
    if kind is WorkloadKind.RESULT:
        events.results().result_failed(object_id, reason)
    else:
        events.inferences().inference_failed(object_id, reason)


def record_replicas(inference_id: int, health: ReplicaHealth) -> None:
    """The reconciler's health callback: record an inference's ready replicas, restarts and last
    exit (the first ready replica makes it running). Quiet about a deleted inference."""
    close_old_connections()
    events.inferences().inference_replicas(
        inference_id,
        ready=health.ready,
        restarts=health.restarts,
        last_exit_reason=health.last_exit_reason,
    )


def start_reconciler(
    api_client: ApiClient, stop: threading.Event, *, retry_delay_s: float = 10.0, **options: float
) -> threading.Thread:
    """A daemon thread running `Reconciler(on_failed=mark_failed, on_health=record_replicas)`
    (crash loops past `KAFKAML_CRASH_LOOP_LIMIT` fail an inference) until `stop` is set; it
    starts the reconciler again after an error (the API server restarting, a missing right).
    `options` go to `Reconciler` (watch and idle timeouts)."""
    namespace = KubernetesRunnerSettings().namespace

    def on_failed(kind: WorkloadKind, object_id: int, reason: str) -> None:
        try:
            mark_failed(kind, object_id, reason)
        finally:
            connection.close()  # the reconciler's threads each hold their own connection

    def on_health(inference_id: int, health: ReplicaHealth) -> None:
        try:
            record_replicas(inference_id, health)
        finally:
            connection.close()

    # Reconciler.run sets the event it is given when a watch fails: each run gets its own, which
    # a relay sets when the caller's `stop` is set.
    current = [threading.Event()]

    def relay() -> None:
        stop.wait()
        current[0].set()

    def loop() -> None:
        while not stop.is_set():
            current[0] = run_stop = threading.Event()
            if stop.is_set():
                break
            reconciler = Reconciler(
                api_client,
                namespace=namespace,
                on_failed=on_failed,
                on_health=on_health,
                crash_loop_limit=settings.KAFKAML.crash_loop_limit,
                **options,  # type: ignore[arg-type]
            )
            try:
                reconciler.run(run_stop)
            except Exception:  # logged and retried: the backend keeps serving without it
                log.exception("the Kubernetes reconciler stopped; starting it again")
            stop.wait(retry_delay_s)

    threading.Thread(target=relay, name="kafkaml-k8s-reconciler-stop", daemon=True).start()
    thread = threading.Thread(target=loop, name="kafkaml-k8s-reconciler", daemon=True)
    thread.start()
    return thread
