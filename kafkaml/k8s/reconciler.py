"""Turn failed Kubernetes workloads into failed results and inferences.

The reconciler lists, then watches, the runner's Jobs, Deployments and pods (by their ownership
labels) and calls `on_failed(kind, id, reason)` when:

- a training Job gets the condition `Failed` (backoff limit reached, deadline exceeded, ...);
- a training Job is deleted before it completed or failed (it vanished);
- an inference Deployment stops progressing (ProgressDeadlineExceeded) or cannot create pods
  (ReplicaFailure, e.g. a quota);
- a container of a training or inference pod was killed for exceeding its memory (OOMKilled).

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
from kafkaml.k8s.specs import WorkloadKind

log = logging.getLogger(__name__)

FailureCallback = Callable[[WorkloadKind, int, str], None]
# Handles one object of a list ("LISTED") or watch event ("ADDED", "MODIFIED", "DELETED").
Handler = Callable[[Any, str], None]

HTTP_GONE = 410
OOM_KILLED = "OOMKilled"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


class Reconciler:
    """Watches one namespace and reports failed workloads to `on_failed`.

    `watch_timeout_seconds` is how long the API server keeps one watch open;
    `idle_timeout_seconds` is how long a watch may stay silent before the client gives up on the
    connection and lists again (it also bounds how long `run` takes to notice `stop`).
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str,
        on_failed: FailureCallback,
        watch_timeout_seconds: int = 300,
        idle_timeout_seconds: float = 330.0,
        retry_delay_seconds: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self._api_client = api_client
        self._on_failed = on_failed
        self._watch_timeout = watch_timeout_seconds
        self._idle_timeout = idle_timeout_seconds
        self._retry_delay = retry_delay_seconds
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._reported: set[tuple[WorkloadKind, int, str]] = set()
        self._lock = threading.Lock()

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
        if failed is not None and failed.status == "True":
            reason = f"{failed.reason or 'Failed'}: {failed.message or 'the training Job failed'}"
            self._report_results(
                objects.metadata_of(job), _identity(objects.metadata_of(job)), reason
            )
        elif event_type == "DELETED" and not _finished(conditions):
            metadata = objects.metadata_of(job)
            reason = f"Job {metadata.name} was deleted before it finished"
            self._report_results(metadata, _identity(metadata), reason)

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
        """Report the pod's result(s) or inference failed if one of its containers was OOMKilled."""
        killed = _oom_killed_container(pod)
        if killed is None:
            return
        metadata = objects.metadata_of(pod)
        reason = (
            f"{OOM_KILLED}: container {killed} of pod {metadata.name} exceeded its memory limit"
        )
        labels = metadata.labels or {}
        if labels.get(objects.LABEL_COMPONENT) == objects.COMPONENT[WorkloadKind.INFERENCE]:
            inference_id = labels.get(objects.LABEL_INFERENCE_ID, "")
            if inference_id.isdigit():
                self._report(WorkloadKind.INFERENCE, int(inference_id), _identity(metadata), reason)
        else:
            self._report_results(metadata, _job_of_pod(metadata), reason)

    def _list_and_handle(
        self,
        resource: str,
        list_fn: Callable[..., Any],
        label_selector: str,
        handle: Callable[[Any, str], None],
    ) -> str | None:
        answer = _call_list(resource, list_fn, self.namespace, label_selector)
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

        A training Job whose pod was OOMKilled and that then fails is one report (the first
        reason); a workload started again later (a new uid) may fail anew. An exception from
        on_failed ends `run`; the failure counts as unreported until then.
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


def _job_of_pod(metadata: client.V1ObjectMeta) -> str:
    """The identity of the Job that created a training pod, from the labels the Job controller
    puts on its pods (the Job's uid and name)."""
    labels = metadata.labels or {}
    return labels.get(JOB_UID_LABEL) or labels.get(JOB_NAME_LABEL) or _identity(metadata)


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


def _oom_killed_container(pod: V1Pod) -> str | None:
    """The name of a container of `pod` whose current or last run ended OOMKilled, if any."""
    statuses = (pod.status.container_statuses or []) if pod.status else []
    for status in statuses:
        for state in (status.state, status.last_state):
            terminated = state.terminated if state is not None else None
            if terminated is not None and terminated.reason == OOM_KILLED:
                return str(status.name)
    return None
