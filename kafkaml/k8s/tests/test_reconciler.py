"""The reconciler over real HTTP against kmock: list, watch, re-list after 410, report failures
and replica health.

kmock stores objects and serves list and watch, but runs no controllers: nothing creates pods,
restarts containers or sets conditions by itself. The tests play the Kubernetes controllers: they
create pods and patch a Job's status or a pod's status through the API (the status
subresource), exactly as the Job controller and the kubelet would.
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
from kafkaml.k8s.health import ReplicaHealth
from kafkaml.k8s.reconciler import Reconciler
from kafkaml.k8s.runner import KubernetesRunner
from kafkaml.k8s.specs import WorkloadKind
from kafkaml.k8s.tests.conftest import (
    NAMESPACE,
    EmulatedApiServer,
    create_pod,
    inference_spec,
    oom_kill,
    report_container,
    training_spec,
)

JOBS = kmock.resource("batch/v1/jobs")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
PODS = kmock.resource("v1/pods")
LIST, WATCH = kmock.action.LIST, kmock.action.WATCH
DEADLINE_S = 20.0
BACKOFF_LIMIT_REACHED = "BackoffLimitExceeded: Job has reached the specified backoff limit"
CRASH_LOOP_LIMIT = 3
POD = "kafkaml-inference-5-xyz"

Failure = tuple[WorkloadKind, int, str]


class RunningReconciler:
    """A Reconciler running in a thread, its reports collected in a queue."""

    def __init__(self, api_client: ApiClient, on_failed: Any = None) -> None:
        self.reports: queue.Queue[Failure] = queue.Queue()
        self.health: queue.Queue[tuple[int, ReplicaHealth]] = queue.Queue()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.reconciler = Reconciler(
            api_client,
            namespace=NAMESPACE,
            on_failed=on_failed
            or (lambda kind, id_, reason: self.reports.put((kind, id_, reason))),
            on_health=lambda id_, health: self.health.put((id_, health)),
            crash_loop_limit=CRASH_LOOP_LIMIT,
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

    def health_until(self, inference_id: int, wanted: ReplicaHealth) -> list[ReplicaHealth]:
        """The health reports of `inference_id` up to and including `wanted`."""
        seen: list[ReplicaHealth] = []
        while not seen or seen[-1] != wanted:
            try:
                id_, health = self.health.get(timeout=DEADLINE_S)
            except queue.Empty:
                raise AssertionError(f"never reported {wanted}; reported {seen}") from None
            if id_ == inference_id:
                seen.append(health)
        return seen

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


def end_training_pod(api_client: ApiClient, pod_name: str, reason: str, code: int) -> None:
    """What the kubelet writes when a Job's container ended (restartPolicy Never: no restart)."""
    container = {
        "name": "worker",
        "image": "kafkaml",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": {"reason": reason, "exitCode": code}},
    }
    body = {"status": {"phase": "Failed", "containerStatuses": [container]}}
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


def test_an_oom_killed_training_pod_is_no_failure_until_its_job_fails(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    KubernetesRunner(api_client, namespace=NAMESPACE).start_training(training_spec())
    # The Job controller labels the pods it creates with their Job's name.
    labels = {
        **objects.training_labels(training_spec()),
        "batch.kubernetes.io/job-name": "kafkaml-training-7",
    }
    create_pod(
        api_client, "kafkaml-training-7-abcde", labels, {objects.ANNOTATION_RESULT_IDS: "7,8"}
    )
    create_pod(
        api_client, "kafkaml-inference-5-xyz", objects.inference_labels(inference_spec()), {}
    )
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)
    wait_until_watching(apiserver, JOBS)

    end_training_pod(api_client, "kafkaml-training-7-abcde", "OOMKilled", 137)
    # One watch thread handles pod events in order: once the later inference pod's health is
    # reported, the training pod's end was handled, and it reported no failure (within its
    # backoffLimit the Job makes a new pod).
    report_container(
        api_client, "kafkaml-inference-5-xyz", ready=True, restarts=0, state={"running": {}}
    )
    running.health_until(5, ReplicaHealth(ready=1, restarts=0))
    assert running.no_more_reports()

    fail_job(api_client, "kafkaml-training-7")

    reason = (
        f"{BACKOFF_LIMIT_REACHED}; the last pod exit: "
        "pod kafkaml-training-7-abcde: OOMKilled (exit code 137)"
    )
    assert {running.next_report(), running.next_report()} == {
        (WorkloadKind.RESULT, 7, reason),
        (WorkloadKind.RESULT, 8, reason),
    }


def test_an_oom_killed_inference_replica_is_a_restart_not_a_failure(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    labels = objects.inference_labels(inference_spec())
    create_pod(api_client, "kafkaml-inference-5-xyz", labels, {})
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)

    oom_kill(api_client, "kafkaml-inference-5-xyz")

    oom = "pod kafkaml-inference-5-xyz: OOMKilled (exit code 137)"
    health = running.health_until(5, ReplicaHealth(ready=0, restarts=1, last_exit_reason=oom))
    assert health[0] == ReplicaHealth(ready=0, restarts=0)  # the pod as listed, before the kill
    assert running.no_more_reports()


def test_a_restarted_inference_pod_is_ready_again_with_its_restart_count(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    labels = objects.inference_labels(inference_spec())
    for name in ("kafkaml-inference-5-a", "kafkaml-inference-5-b"):
        create_pod(api_client, name, labels, {})
        report_container(api_client, name, ready=True, restarts=0, state={"running": {}})
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)
    running.health_until(5, ReplicaHealth(ready=2, restarts=0))

    # The container of pod b exits 1; the kubelet restarts it in place and it is ready again.
    crashed = {"reason": "Error", "exitCode": 1, "finishedAt": "2026-01-01T00:00:00Z"}
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    report_container(
        api_client,
        "kafkaml-inference-5-b",
        ready=False,
        restarts=1,
        state=waiting,
        last_exit=crashed,
    )
    exit_b = "pod kafkaml-inference-5-b: Error (exit code 1)"
    running.health_until(5, ReplicaHealth(ready=1, restarts=1, last_exit_reason=exit_b))
    report_container(
        api_client,
        "kafkaml-inference-5-b",
        ready=True,
        restarts=1,
        state={"running": {}},
        last_exit=crashed,
    )
    running.health_until(5, ReplicaHealth(ready=2, restarts=1, last_exit_reason=exit_b))

    # A scale-down deletes pod b: its restarts still count.
    client.CoreV1Api(api_client).delete_namespaced_pod("kafkaml-inference-5-b", NAMESPACE)
    running.health_until(5, ReplicaHealth(ready=1, restarts=1))
    assert running.no_more_reports()


def test_an_inference_pod_crash_looping_past_the_limit_fails_the_inference_once(
    apiserver: EmulatedApiServer, api_client: ApiClient, start_reconciler: Any
) -> None:
    labels = objects.inference_labels(inference_spec())
    create_pod(api_client, "kafkaml-inference-5-xyz", labels, {})
    running = start_reconciler()
    wait_until_watching(apiserver, PODS)

    oom = "OOMKilled (exit code 137)"
    oom_kill(api_client, "kafkaml-inference-5-xyz", restarts=CRASH_LOOP_LIMIT - 1)
    running.health_until(5, ReplicaHealth(0, CRASH_LOOP_LIMIT - 1, f"pod {POD}: {oom}"))
    assert running.no_more_reports()  # restarts below the limit are no failure

    oom_kill(api_client, "kafkaml-inference-5-xyz", restarts=CRASH_LOOP_LIMIT)

    reason = (
        f"CrashLoopBackOff: container worker of pod {POD} restarted {CRASH_LOOP_LIMIT} times "
        f"(crash-loop limit {CRASH_LOOP_LIMIT}); its last exit: {oom}"
    )
    assert running.next_report() == (WorkloadKind.INFERENCE, 5, reason)
    # The restart after it is the same crash loop of the same pod: not reported twice.
    oom_kill(api_client, "kafkaml-inference-5-xyz", restarts=CRASH_LOOP_LIMIT + 1)
    running.health_until(5, ReplicaHealth(0, CRASH_LOOP_LIMIT + 1, f"pod {POD}: {oom}"))
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
