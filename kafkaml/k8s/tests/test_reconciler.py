"""The reconciler over real HTTP against kmock: list, watch, re-list after 410, report failures.

The tests play the Kubernetes controllers: they patch a Job's status or a pod's container
statuses through the API, exactly as the Job controller and the kubelet would.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import kmock
import pytest
from kmock._internal.rendering import Response  # not re-exported by kmock 0.8
from kubernetes import client
from kubernetes.client import ApiClient

from kafkaml.k8s import objects
from kafkaml.k8s.errors import RunnerPermissionError
from kafkaml.k8s.reconciler import Reconciler
from kafkaml.k8s.runner import KubernetesRunner
from kafkaml.k8s.specs import WorkloadKind
from kafkaml.k8s.tests.conftest import NAMESPACE, EmulatedApiServer, inference_spec, training_spec

JOBS = kmock.resource("batch/v1/jobs")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
PODS = kmock.resource("v1/pods")
LIST, WATCH = kmock.action.LIST, kmock.action.WATCH
DEADLINE_S = 20.0
BACKOFF_LIMIT_REACHED = "BackoffLimitExceeded: Job has reached the specified backoff limit"

Failure = tuple[WorkloadKind, int, str]


class RunningReconciler:
    """A Reconciler running in a thread, its reports collected in a queue."""

    def __init__(self, api_client: ApiClient, on_failed: Any = None) -> None:
        self.reports: queue.Queue[Failure] = queue.Queue()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.reconciler = Reconciler(
            api_client,
            namespace=NAMESPACE,
            on_failed=on_failed
            or (lambda kind, id_, reason: self.reports.put((kind, id_, reason))),
            # Short idle timeouts so the watch threads notice `stop` quickly in tests.
            idle_timeout_seconds=1.0,
            retry_delay_seconds=0.05,
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.reconciler.run(self.stop)
        except BaseException as error:
            self.error = error

    def next_report(self) -> Failure:
        return self.reports.get(timeout=DEADLINE_S)

    def no_more_reports(self) -> bool:
        return self.reports.empty()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=DEADLINE_S)
        assert not self.thread.is_alive()


@pytest.fixture
def start_reconciler(api_client: ApiClient) -> Iterator[Any]:
    started: list[RunningReconciler] = []

    def start(on_failed: Any = None) -> RunningReconciler:
        running = RunningReconciler(api_client, on_failed)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def wait_until_watching(apiserver: EmulatedApiServer, resource: kmock.resource) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not apiserver.requests("watch", resource):
        assert time.monotonic() < deadline, f"the reconciler never watched {resource}"
        time.sleep(0.01)


def fail_job(api_client: ApiClient, name: str) -> None:
    """What the Job controller writes when the backoff limit is reached."""
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    body = {"status": {"conditions": [condition], "failed": 1}}
    client.BatchV1Api(api_client).patch_namespaced_job_status(name, NAMESPACE, body)


def complete_job(api_client: ApiClient, name: str) -> None:
    condition = {"type": "Complete", "status": "True"}
    body = {"status": {"conditions": [condition], "succeeded": 1}}
    client.BatchV1Api(api_client).patch_namespaced_job_status(name, NAMESPACE, body)


def create_pod(
    api_client: ApiClient, name: str, labels: dict[str, str], annotations: dict[str, str]
) -> None:
    """A pod as the Job or ReplicaSet controller creates it from the workload's template."""
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "worker", "image": "kafkaml"}]},
    }
    client.CoreV1Api(api_client).create_namespaced_pod(NAMESPACE, body)


def oom_kill(api_client: ApiClient, pod_name: str) -> None:
    """What the kubelet reports after the kernel killed the container for its memory."""
    terminated = {"reason": "OOMKilled", "exitCode": 137}
    status = {
        "name": "worker",
        "image": "kafkaml",
        "imageID": "",
        "ready": False,
        "restartCount": 1,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": terminated},
    }
    body = {"status": {"phase": "Running", "containerStatuses": [status]}}
    client.CoreV1Api(api_client).patch_namespaced_pod_status(pod_name, NAMESPACE, body)


def test_failed_condition_on_a_job_marks_every_result_of_its_chain_failed(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec())
    running = start_reconciler()
    wait_until_watching(apiserver, JOBS)

    fail_job(api_client, "kafkaml-training-7")

    reports = {running.next_report(), running.next_report()}
    assert reports == {
        (WorkloadKind.RESULT, 7, BACKOFF_LIMIT_REACHED),
        (WorkloadKind.RESULT, 8, BACKOFF_LIMIT_REACHED),
    }


def test_reconciler_watches_only_the_runners_workloads(
    apiserver: EmulatedApiServer, start_reconciler: Any
) -> None:
    start_reconciler()
    for resource in (JOBS, DEPLOYMENTS, PODS):
        wait_until_watching(apiserver, resource)

    [job_watch] = apiserver.requests("watch", JOBS)[:1]
    [deployment_watch] = apiserver.requests("watch", DEPLOYMENTS)[:1]
    [pod_watch] = apiserver.requests("watch", PODS)[:1]
    assert job_watch.params["labelSelector"] == objects.selector(WorkloadKind.RESULT)
    assert deployment_watch.params["labelSelector"] == objects.selector(WorkloadKind.INFERENCE)
    assert pod_watch.params["labelSelector"] == "app.kubernetes.io/managed-by=kafkaml-runner"
    assert job_watch.params["allowWatchBookmarks"] == "true"


def test_a_job_failed_while_no_one_watched_is_found_by_the_first_list(
    api_client: ApiClient, start_reconciler: Any
) -> None:
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec(result_ids=(4,)))
    fail_job(api_client, "kafkaml-training-4")

    running = start_reconciler()

    assert running.next_report() == (WorkloadKind.RESULT, 4, BACKOFF_LIMIT_REACHED)


def test_expired_watch_410_is_followed_by_a_fresh_list_that_finds_the_failure(
    apiserver: EmulatedApiServer,
    api_client: ApiClient,
    start_reconciler: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kafkaml.k8s.reconciler")
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec(result_ids=(4,)))
    fail_job(api_client, "kafkaml-training-4")
    # The first list predates the failure; the first watch has expired (410 Gone).
    apiserver.emulator["list", JOBS] << once({"metadata": {"resourceVersion": "1"}, "items": []})
    gone = {"type": "ERROR", "object": gone_status()}
    apiserver.emulator["watch", JOBS] << once((gone,))

    running = start_reconciler()

    assert running.next_report() == (WorkloadKind.RESULT, 4, BACKOFF_LIMIT_REACHED)
    reads = [r.action for r in apiserver.requests(JOBS) if r.action in (LIST, WATCH)]
    assert reads[:3] == [LIST, WATCH, LIST]
    assert "watch of jobs expired (410 Gone); listing again" in caplog.messages


def test_a_watch_refused_with_http_410_is_followed_by_a_fresh_list(
    apiserver: EmulatedApiServer,
    api_client: ApiClient,
    start_reconciler: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kafkaml.k8s.reconciler")
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec(result_ids=(4,)))
    fail_job(api_client, "kafkaml-training-4")
    apiserver.emulator["list", JOBS] << once({"metadata": {"resourceVersion": "1"}, "items": []})
    # This time the API server refuses the watch request itself rather than within its stream.
    apiserver.emulator["watch", JOBS] << once(Response(status=410, payload=gone_status()))

    running = start_reconciler()

    assert running.next_report() == (WorkloadKind.RESULT, 4, BACKOFF_LIMIT_REACHED)
    reads = [r.action for r in apiserver.requests(JOBS) if r.action in (LIST, WATCH)]
    assert reads[:3] == [LIST, WATCH, LIST]
    assert "watch of jobs expired (410 Gone); listing again" in caplog.messages


def test_a_job_deleted_before_it_finished_marks_its_results_failed(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    runner = KubernetesRunner(api_client, namespace=NAMESPACE)
    runner.start_training(training_spec(result_ids=(4,)))
    running = start_reconciler()
    wait_until_watching(apiserver, JOBS)

    client.BatchV1Api(api_client).delete_namespaced_job("kafkaml-training-4", NAMESPACE)

    reason = "Job kafkaml-training-4 was deleted before it finished"
    assert running.next_report() == (WorkloadKind.RESULT, 4, reason)


def test_a_completed_job_removed_after_its_ttl_is_no_failure(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    runner = KubernetesRunner(api_client, namespace=NAMESPACE)
    runner.start_training(training_spec(result_ids=(4,)))
    runner.start_training(training_spec(result_ids=(5,)))
    running = start_reconciler()
    wait_until_watching(apiserver, JOBS)

    complete_job(api_client, "kafkaml-training-4")
    client.BatchV1Api(api_client).delete_namespaced_job("kafkaml-training-4", NAMESPACE)
    # A failure after those events: once it is reported, the earlier events were handled.
    fail_job(api_client, "kafkaml-training-5")

    assert running.next_report() == (WorkloadKind.RESULT, 5, BACKOFF_LIMIT_REACHED)
    assert running.no_more_reports()


def test_an_oom_killed_training_pod_marks_its_results_failed(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    labels = objects.training_labels(training_spec())
    annotations = {objects.ANNOTATION_RESULT_IDS: "7,8"}
    create_pod(api_client, "kafkaml-training-7-abcde", labels, annotations)
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)

    oom_kill(api_client, "kafkaml-training-7-abcde")

    reason = "OOMKilled: container worker of pod kafkaml-training-7-abcde exceeded its memory limit"
    assert {running.next_report(), running.next_report()} == {
        (WorkloadKind.RESULT, 7, reason),
        (WorkloadKind.RESULT, 8, reason),
    }


def test_an_oom_killed_inference_replica_marks_the_inference_failed_once(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    labels = objects.inference_labels(inference_spec())
    create_pod(api_client, "kafkaml-inference-5-xyz", labels, {})
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)

    oom_kill(api_client, "kafkaml-inference-5-xyz")
    oom_kill(api_client, "kafkaml-inference-5-xyz")

    reason = "OOMKilled: container worker of pod kafkaml-inference-5-xyz exceeded its memory limit"
    assert running.next_report() == (WorkloadKind.INFERENCE, 5, reason)
    # The second kill is the same failure of the same pod: not reported twice.
    assert len(apiserver.requests("patch", PODS)) == 2
    assert running.no_more_reports()


def test_a_stalled_inference_rollout_marks_the_inference_failed(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    KubernetesRunner(api_client, namespace=NAMESPACE).start_inference(inference_spec())
    running = start_reconciler()
    wait_until_watching(apiserver, DEPLOYMENTS)

    # What the Deployment controller writes when replicas never became ready in time.
    message = 'ReplicaSet "kafkaml-inference-5-6d4f" has timed out progressing.'
    stalled = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": message,
    }
    body = {"status": {"conditions": [stalled]}}
    apps = client.AppsV1Api(api_client)
    apps.patch_namespaced_deployment_status("kafkaml-inference-5", NAMESPACE, body)

    reason = f"ProgressDeadlineExceeded: {message}"
    assert running.next_report() == (WorkloadKind.INFERENCE, 5, reason)


def test_a_progressing_inference_is_no_failure(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    runner = KubernetesRunner(api_client, namespace=NAMESPACE)
    runner.start_inference(inference_spec())
    runner.start_inference(inference_spec(inference_id=6))
    running = start_reconciler()
    wait_until_watching(apiserver, DEPLOYMENTS)
    apps = client.AppsV1Api(api_client)

    progressing = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    apps.patch_namespaced_deployment_status(
        "kafkaml-inference-5", NAMESPACE, {"status": {"conditions": [progressing]}}
    )
    # A failure after it: once reported, the earlier event was handled.
    quota = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}
    apps.patch_namespaced_deployment_status(
        "kafkaml-inference-6", NAMESPACE, {"status": {"conditions": [quota]}}
    )

    failure = "FailedCreate: the inference Deployment failed"
    assert running.next_report() == (WorkloadKind.INFERENCE, 6, failure)
    assert running.no_more_reports()


def test_a_reconciler_without_permission_to_list_stops_with_permission_error(
    apiserver: EmulatedApiServer, start_reconciler: Any
) -> None:
    forbidden = {"kind": "Status", "code": 403, "message": 'pods is forbidden: cannot list "pods"'}
    apiserver.emulator["list", PODS] << 403 << forbidden

    running = start_reconciler()
    running.thread.join(timeout=DEADLINE_S)

    assert isinstance(running.error, RunnerPermissionError)
    assert (running.error.verb, running.error.resource) == ("list", "pods")


def gone_status() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": 410,
        "reason": "Expired",
        "message": "too old resource version: 1 (2000)",
    }


def once(payload: Any) -> Any:
    """A kmock reaction that answers the first matching request only, then steps aside."""
    answers = [payload]

    def answer() -> Any:
        return answers.pop() if answers else NotImplemented

    return answer


def test_an_exception_from_on_failed_ends_run_with_it(
    api_client: ApiClient, start_reconciler: Any
) -> None:
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec(result_ids=(4,)))
    fail_job(api_client, "kafkaml-training-4")

    def refuse(kind: WorkloadKind, object_id: int, reason: str) -> None:
        raise LookupError(f"no {kind.value} {object_id} in the database")

    running = start_reconciler(refuse)
    running.thread.join(timeout=DEADLINE_S)

    assert isinstance(running.error, LookupError)
    assert str(running.error) == "no result 4 in the database"


def test_a_job_failing_after_its_pod_was_oom_killed_is_reported_once_with_the_oom(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    runner = KubernetesRunner(api_client, namespace=NAMESPACE)
    runner.start_training(training_spec(result_ids=(7,)))
    runner.start_training(training_spec(result_ids=(4,)))
    # The Job controller labels the pods it creates with their Job's name (and uid).
    labels = {
        **objects.training_labels(training_spec(result_ids=(7,))),
        "batch.kubernetes.io/job-name": "kafkaml-training-7",
    }
    create_pod(api_client, "kafkaml-training-7-q2w3e", labels, {objects.ANNOTATION_RESULT_IDS: "7"})
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)
    wait_until_watching(apiserver, JOBS)

    oom_kill(api_client, "kafkaml-training-7-q2w3e")
    first = running.next_report()
    fail_job(api_client, "kafkaml-training-7")
    # A later failure on the same watch: once it is reported, Job 7's failure was handled.
    fail_job(api_client, "kafkaml-training-4")

    oom = "OOMKilled: container worker of pod kafkaml-training-7-q2w3e exceeded its memory limit"
    assert first == (WorkloadKind.RESULT, 7, oom)
    assert running.next_report() == (WorkloadKind.RESULT, 4, BACKOFF_LIMIT_REACHED)
    assert running.no_more_reports()
