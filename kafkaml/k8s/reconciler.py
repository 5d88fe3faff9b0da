"""Turn Kubernetes workload status into failed results and inferences, and replica health.

The reconciler lists, then watches, the runner's Jobs, Deployments and pods (by their ownership
labels) and calls `on_failed(kind, id, reason)` when:

- a training Job gets the condition `Failed` (backoff limit reached, deadline exceeded, ...),
  with the last exit of its pods (e.g. `OOMKilled (exit code 137)`) when one was seen;
- a training Job is deleted before it completed or failed (it vanished);
- an inference Deployment stops progressing (ProgressDeadlineExceeded) or cannot create pods
  (ReplicaFailure, e.g. a quota);
- a container of an inference pod waits in CrashLoopBackOff after `crash_loop_limit` restarts.

A pod that fails or restarts is not a failure by itself: a training Job makes a new pod within
its `backoffLimit`, and the kubelet restarts an inference pod's container in place. Every change
in an inference's pods is reported to `on_health(inference_id, ReplicaHealth)`: ready pods,
container restarts and the last exit (see `kafkaml.k8s.health`).

A watch that expires (410 Gone) or breaks is followed by a fresh list, so no change is missed.
Delivery is at least once: each failure is reported once per Reconciler, but a new Reconciler (a
restarted backend) reports still-listed failures again, so `on_failed` must be idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client import ApiClient, V1Deployment, V1Job, V1Pod
from kubernetes.client.exceptions import ApiException

from kafkaml.k8s import objects
from kafkaml.k8s.errors import api_error
from kafkaml.k8s.health import PodHealth, ReplicaHealth, pod_health, summarize, training_pod_exit
from kafkaml.k8s.specs import WorkloadKind

log = logging.getLogger(__name__)

FailureCallback = Callable[[WorkloadKind, int, str], None]
HealthCallback = Callable[[int, ReplicaHealth], None]
# Handles one object of a list ("LISTED") or watch event ("ADDED", "MODIFIED", "DELETED").
Handler = Callable[[Any, str], None]

HTTP_GONE = 410
# KAFKAML_CRASH_LOOP_LIMIT's default: the local runner's limit of crashes in a row.
CRASH_LOOP_LIMIT = 5
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Reconciler:
    """Watches one namespace and reports failed workloads to `on_failed`.

    `watch_timeout_seconds` is how long the API server keeps one watch open;
    `idle_timeout_seconds` is how long a watch may stay silent before the client gives up on the
    connection and lists again (it also bounds how long `run` takes to notice `stop`).
    `on_health` (optional) hears every change in an inference's replicas; `crash_loop_limit`
    is how many restarts of a container in CrashLoopBackOff fail its inference.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str,
        on_failed: FailureCallback,
        on_health: HealthCallback | None = None,
        crash_loop_limit: int = CRASH_LOOP_LIMIT,
        watch_timeout_seconds: int = 300,
        idle_timeout_seconds: float = 330.0,
        retry_delay_seconds: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self._api_client = api_client
        self._on_failed = on_failed
        self._on_health = on_health
        self._crash_loop_limit = crash_loop_limit
        self._watch_timeout = watch_timeout_seconds
        self._idle_timeout = idle_timeout_seconds
        self._retry_delay = retry_delay_seconds
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._reported: set[tuple[WorkloadKind, int, str]] = set()
        self._lock = threading.Lock()
        # Inference pods by inference id and pod name; restarts of pods gone since; the health
        # last reported. The last exit of each training Job's pods, by Job name.
        self._pods: dict[int, dict[str, PodHealth]] = {}
        self._gone_restarts: dict[int, int] = {}
        self._health: dict[int, ReplicaHealth] = {}
        self._job_exits: dict[str, str] = {}

    def run(self, stop: threading.Event) -> None:
        """Follow Jobs, Deployments and pods until `stop` is set. Re-raises what ends a watch
        early (e.g. RunnerPermissionError when the Role lacks list or watch)."""
        follows: list[tuple[str, Callable[..., Any], WorkloadKind | None, Handler]] = [
            ("jobs", self._batch.list_namespaced_job, WorkloadKind.RESULT, self.handle_job),
            (
                "deployments",
                self._apps.list_namespaced_deployment,
                WorkloadKind.INFERENCE,
                self.handle_deployment,
            ),
            ("pods", self._core.list_namespaced_pod, None, self.handle_pod),
        ]
        with ThreadPoolExecutor(len(follows), thread_name_prefix="kafkaml-reconciler") as pool:
            futures = [pool.submit(self.follow, *follow, stop) for follow in follows]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            stop.set()
            for future in done:
                future.result()

    def follow(
        self,
        resource: str,
        list_fn: Callable[..., Any],
        kind: WorkloadKind | None,
        handle: Handler,
        stop: threading.Event,
    ) -> None:
        """List, then watch from the list's resourceVersion; list again whenever a watch ends."""
        label_selector = _selector(kind)
        while not stop.is_set():
            version = self._list_and_handle(resource, list_fn, label_selector, handle)
            try:
                self._watch(list_fn, label_selector, version, handle, stop)
            except ApiException as error:
                if error.status != HTTP_GONE:
                    raise api_error(error, "watch", resource) from error
                log.info("watch of %s expired (410 Gone); listing again", resource)
            except urllib3.exceptions.HTTPError as error:
                log.warning("watch of %s broke (%s); listing again", resource, error)
                stop.wait(self._retry_delay)

    def handle_job(self, job: V1Job, event_type: str) -> None:
        """Report every result of `job` failed if it failed, or vanished before finishing."""
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        failed = conditions.get("Failed")
        metadata = objects.metadata_of(job)
        if failed is not None and failed.status == "True":
            reason = f"{failed.reason or 'Failed'}: {failed.message or 'the training Job failed'}"
            self._report_results(metadata, _identity(metadata), self._with_exit(job, reason))
        elif event_type == "DELETED" and not _finished(conditions):
            reason = f"Job {metadata.name} was deleted before it finished"
            self._report_results(metadata, _identity(metadata), self._with_exit(job, reason))
        if event_type == "DELETED":
            with self._lock:
                self._job_exits.pop(str(metadata.name), None)

    def handle_deployment(self, deployment: V1Deployment, event_type: str) -> None:
        """Report an inference failed when its rollout stopped making progress (pods that never
        become ready within progressDeadlineSeconds) or its ReplicaSet cannot create pods."""
        status = deployment.status
        conditions = {c.type: c for c in (status.conditions or [])} if status else {}
        stalled = conditions.get("Progressing")
        refused = conditions.get("ReplicaFailure")
        if stalled is not None and stalled.status == "False":
            self._report_inference(deployment, stalled.reason, stalled.message)
        elif refused is not None and refused.status == "True":
            self._report_inference(deployment, refused.reason, refused.message)

    def handle_pod(self, pod: V1Pod, event_type: str) -> None:
        """Follow an inference pod's health, or remember how a training pod ended (its Job's
        failure reports it). Fails an inference whose pod is in a crash loop."""
        metadata = objects.metadata_of(pod)
        labels = metadata.labels or {}
        if labels.get(objects.LABEL_COMPONENT) != objects.COMPONENT[WorkloadKind.INFERENCE]:
            ended = training_pod_exit(pod)
            if ended:
                with self._lock:
                    self._job_exits[_job_name_of_pod(metadata)] = ended
            return
        inference_id = labels.get(objects.LABEL_INFERENCE_ID, "")
        if not inference_id.isdigit():
            return
        health = pod_health(pod, self._crash_loop_limit)
        self._follow_replicas(int(inference_id), health, deleted=event_type == "DELETED")
        if health.crash_loop and event_type != "DELETED":
            reason = health.crash_loop
            self._report(WorkloadKind.INFERENCE, int(inference_id), _identity(metadata), reason)

    def _follow_replicas(self, inference_id: int, pod: PodHealth, *, deleted: bool) -> None:
        """Update the inference's pods and report its health to on_health when it changed."""
        with self._lock:
            pods = self._pods.setdefault(inference_id, {})
            if deleted:
                gone = pods.pop(pod.name, None)  # None: already handled as gone by a list
                restarts = gone.restarts if gone is not None else 0
                self._gone_restarts[inference_id] = (
                    self._gone_restarts.get(inference_id, 0) + restarts
                )
            else:
                pods[pod.name] = pod
            health = summarize(list(pods.values()), self._gone_restarts.get(inference_id, 0))
            if self._health.get(inference_id) == health:
                return
            self._health[inference_id] = health
        if self._on_health is not None:
            self._on_health(inference_id, health)

    def _forget_unlisted_pods(self, listed: set[str]) -> None:
        """Pods deleted while no watch ran are missing from a fresh list: handle them as
        deleted, so they count neither as ready nor twice."""
        with self._lock:
            gone = [
                (inference_id, pod)
                for inference_id, pods in self._pods.items()
                for name, pod in pods.items()
                if name not in listed
            ]
        for inference_id, pod in gone:
            self._follow_replicas(inference_id, pod, deleted=True)

    def _with_exit(self, job: V1Job, reason: str) -> str:
        """`reason` and the last exit seen of the Job's pods, if any."""
        with self._lock:
            ended = self._job_exits.get(str(objects.metadata_of(job).name), "")
        return f"{reason}; the last pod exit: {ended}" if ended else reason

    def _list_and_handle(
        self,
        resource: str,
        list_fn: Callable[..., Any],
        label_selector: str,
        handle: Callable[[Any, str], None],
    ) -> str | None:
        answer = _call_list(resource, list_fn, self.namespace, label_selector)
        if resource == "pods":
            self._forget_unlisted_pods({_name_of(pod) for pod in answer.items})
        for item in answer.items:
            handle(item, "LISTED")
        return answer.metadata.resource_version if answer.metadata else None

    def _watch(
        self,
        list_fn: Callable[..., Any],
        label_selector: str,
        version: str | None,
        handle: Callable[[Any, str], None],
        stop: threading.Event,
    ) -> None:
        # timeout_seconds also tells the client's Watch not to retry a 410 itself: we re-list.
        # Watch carries no type annotations.
        watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
        events: Iterable[dict[str, Any]] = watcher.stream(
            list_fn,
            self.namespace,
            label_selector=label_selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
            _request_timeout=(10, self._idle_timeout),
        )
        for event in events:
            if event["type"] != "BOOKMARK":
                handle(event["object"], event["type"])
            if stop.is_set():
                watcher.stop()

    def _report_inference(
        self, deployment: V1Deployment, reason: str | None, message: str | None
    ) -> None:
        metadata = objects.metadata_of(deployment)
        inference_id = (metadata.labels or {}).get(objects.LABEL_INFERENCE_ID, "")
        if inference_id.isdigit():
            text = f"{reason or 'Failed'}: {message or 'the inference Deployment failed'}"
            self._report(WorkloadKind.INFERENCE, int(inference_id), _identity(metadata), text)

    def _report_results(self, metadata: client.V1ObjectMeta, job: str, reason: str) -> None:
        annotations = metadata.annotations or {}
        ids = annotations.get(objects.ANNOTATION_RESULT_IDS, "")
        for text in ids.split(","):
            if text.strip().isdigit():
                self._report(WorkloadKind.RESULT, int(text), job, reason)

    def _report(self, kind: WorkloadKind, object_id: int, source: str, reason: str) -> None:
        """Call on_failed once per result or inference and failed `source` workload.

        A workload started again later (a new uid) may fail anew. An exception from on_failed
        ends `run`; the failure counts as unreported until then.
        """
        key = (kind, object_id, source)
        with self._lock:
            if key in self._reported:
                return
        log.warning("%s %s failed: %s", kind.value, object_id, reason)
        self._on_failed(kind, object_id, reason)
        with self._lock:
            self._reported.add(key)


def _identity(metadata: client.V1ObjectMeta) -> str:
    """What tells one workload from an earlier one of the same name: its uid."""
    return str(metadata.uid or metadata.name)


def _name_of(pod: V1Pod) -> str:
    return str(objects.metadata_of(pod).name)


def _job_name_of_pod(metadata: client.V1ObjectMeta) -> str:
    """The name of the Job that created a training pod, from the label the Job controller puts
    on its pods (`job-name` before Kubernetes 1.27)."""
    labels = metadata.labels or {}
    return labels.get(JOB_NAME_LABEL) or labels.get("job-name") or ""


def _selector(kind: WorkloadKind | None) -> str:
    """All the runner's workloads of `kind`; None selects both kinds (pods)."""
    if kind is None:
        return f"{objects.LABEL_MANAGED_BY}={objects.MANAGED_BY}"
    return objects.selector(kind)


def _call_list(
    resource: str, list_fn: Callable[..., Any], namespace: str, label_selector: str
) -> Any:
    try:
        return list_fn(namespace, label_selector=label_selector)
    except ApiException as error:
        raise api_error(error, "list", resource) from error


def _finished(conditions: dict[str, Any]) -> bool:
    return any(
        conditions.get(kind) is not None and conditions[kind].status == "True"
        for kind in ("Complete", "Failed")
    )
