"""KubernetesRunner over real HTTP against the kmock Kubernetes API emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kmock
import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from kafkaml.k8s import objects
from kafkaml.k8s.errors import (
    KubernetesApiError,
    RunnerError,
    RunnerPermissionError,
    SpecError,
    WorkloadNotFoundError,
    WorkloadTerminatingError,
)
from kafkaml.k8s.runner import KubernetesRunner, WorkloadState, WorkloadStatus, load_api_client
from kafkaml.k8s.specs import WorkloadKind
from kafkaml.k8s.tests.conftest import (
    NAMESPACE,
    EmulatedApiServer,
    inference_spec,
    serialize,
    training_spec,
)

JOBS = kmock.resource("batch/v1/jobs")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
SECRETS = kmock.resource("v1/secrets")
PODS = kmock.resource("v1/pods")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes Status body, as the API server answers errors."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def with_uid(uid: str) -> Any:
    """A reaction answering a create with the posted object plus the uid the server assigns."""

    def answer(request: kmock.Request) -> dict[str, Any]:
        return {**request.data, "metadata": {**request.data["metadata"], "uid": uid}}

    return answer


@pytest.fixture
def runner(api_client: ApiClient) -> KubernetesRunner:
    return KubernetesRunner(api_client, namespace=NAMESPACE)


def test_start_training_posts_the_exact_job_with_strict_field_validation(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    name = runner.start_training(training_spec())

    [post] = apiserver.requests("post", JOBS)
    expected = serialize(objects.build_training_job(training_spec(), NAMESPACE))
    assert name == "kafkaml-training-7"
    assert post.url.path == "/apis/batch/v1/namespaces/kafkaml/jobs"
    assert dict(post.params) == {"fieldValidation": "Strict"}
    assert post.data == expected
    assert apiserver.stored("batch/v1/jobs", name)["spec"]["backoffLimit"] == 0


def test_start_training_stores_the_token_in_a_secret_owned_by_the_job(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    apiserver.emulator["post", JOBS] << with_uid("uid-of-job-7")

    runner.start_training(training_spec())

    [post] = apiserver.requests("post", SECRETS)
    assert dict(post.params) == {"fieldValidation": "Strict"}
    assert post.data["metadata"]["name"] == "kafkaml-training-7-token"
    assert post.data["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "kafkaml-training-7",
            "uid": "uid-of-job-7",
            "blockOwnerDeletion": False,
        }
    ]
    assert post.data["stringData"] == {"token": "token-for-7-and-8"}


def test_starting_a_job_again_answers_409_and_counts_as_created(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    runner.start_training(training_spec())

    name = runner.start_training(training_spec(job_token="a-newer-token"))

    assert name == "kafkaml-training-7"
    assert len(apiserver.requests("post", JOBS)) == 2
    # The 409 made the runner read the existing Job for its uid before ensuring its Secret.
    assert [r.url.path for r in apiserver.requests("get", JOBS)] == [
        "/apis/batch/v1/namespaces/kafkaml/jobs/kafkaml-training-7"
    ]
    assert len(apiserver.requests("post", SECRETS)) == 2
    assert apiserver.stored("v1/secrets", "kafkaml-training-7-token")["stringData"] == {
        "token": "token-for-7-and-8"
    }


def test_forbidden_create_raises_permission_error_with_the_servers_message(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    message = 'jobs.batch is forbidden: User "system:serviceaccount:kafkaml:kafkaml" cannot create'
    apiserver.emulator["post", JOBS] << 403 << status(403, "Forbidden", message)

    with pytest.raises(RunnerPermissionError) as caught:
        runner.start_training(training_spec())

    assert (caught.value.verb, caught.value.resource) == ("create", "jobs")
    assert message in str(caught.value)
    assert apiserver.requests("post", SECRETS) == []


def test_unexpected_server_error_raises_kubernetes_api_error_with_its_status(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    apiserver.emulator["post", DEPLOYMENTS] << 422 << status(422, "Invalid", "spec.replicas: bad")

    with pytest.raises(KubernetesApiError) as caught:
        runner.start_inference(inference_spec())

    assert caught.value.status == 422
    assert "spec.replicas: bad" in str(caught.value)


def test_stop_training_deletes_the_job_in_the_background(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    runner.start_training(training_spec())

    # Any result of the chain finds its Job.
    assert runner.stop_training(8) == ["kafkaml-training-7"]

    [listing] = apiserver.requests("list", JOBS)
    [delete] = apiserver.requests("delete", JOBS)
    assert listing.params["labelSelector"] == objects.selector(WorkloadKind.RESULT, 8)
    assert delete.url.path == "/apis/batch/v1/namespaces/kafkaml/jobs/kafkaml-training-7"
    assert dict(delete.params) == {"propagationPolicy": "Background"}
    with pytest.raises(KeyError):
        apiserver.stored("batch/v1/jobs", "kafkaml-training-7")


def test_stop_training_of_a_job_deleted_meanwhile_treats_404_as_already_gone(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    runner.start_training(training_spec())
    apiserver.emulator["delete", JOBS] << 404 << status(404, "NotFound", "jobs not found")

    assert runner.stop_training(7) == []
    assert len(apiserver.requests("delete", JOBS)) == 1


def test_start_inference_posts_the_exact_deployment_and_its_token_secret(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    apiserver.emulator["post", DEPLOYMENTS] << with_uid("uid-of-inference-5")

    name = runner.start_inference(inference_spec())

    [post] = apiserver.requests("post", DEPLOYMENTS)
    [secret] = apiserver.requests("post", SECRETS)
    expected = serialize(objects.build_inference_deployment(inference_spec(), NAMESPACE))
    assert name == "kafkaml-inference-5"
    assert dict(post.params) == {"fieldValidation": "Strict"}
    assert post.data == expected
    assert secret.data["metadata"]["ownerReferences"][0]["uid"] == "uid-of-inference-5"
    assert secret.data["stringData"] == {"token": "token-for-inference-5"}


def test_scale_inference_patches_the_scale_subresource(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    runner.start_inference(inference_spec(replicas=3))

    runner.scale_inference(5, 1)

    [patch] = apiserver.requests("patch", DEPLOYMENTS)
    assert (
        patch.url.path == "/apis/apps/v1/namespaces/kafkaml/deployments/kafkaml-inference-5/scale"
    )
    assert patch.data == {"spec": {"replicas": 1}}
    assert apiserver.stored("apps/v1/deployments", "kafkaml-inference-5")["spec"]["replicas"] == 1


def test_scale_of_an_unknown_inference_raises_workload_not_found(runner: KubernetesRunner) -> None:
    with pytest.raises(WorkloadNotFoundError) as caught:
        runner.scale_inference(41, 2)

    assert (caught.value.kind, caught.value.object_id) == ("inference", 41)


def test_stop_inference_deletes_in_the_background_and_a_second_stop_finds_nothing(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    runner.start_inference(inference_spec())

    assert runner.stop_inference(5) is True
    assert runner.stop_inference(5) is False

    deletes = apiserver.requests("delete", DEPLOYMENTS)
    assert [dict(d.params) for d in deletes] == [{"propagationPolicy": "Background"}] * 2


def create_pod(api_client: ApiClient, name: str, labels: dict[str, str], created: str) -> None:
    """A pod as the Job or ReplicaSet controller would create it."""
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": created},
        "spec": {"containers": [{"name": "worker", "image": "kafkaml"}]},
    }
    client.CoreV1Api(api_client).create_namespaced_pod(NAMESPACE, body)


def serve_pod_logs(apiserver: EmulatedApiServer) -> None:
    def answer(request: kmock.Request) -> bytes:
        return f"last lines of {request.name}\n".encode()

    text_plain: Any = kmock.headers({"Content-Type": "text/plain; charset=utf-8"})
    apiserver.emulator["get", PODS, kmock.subresource("log")] << text_plain << answer


def test_logs_of_a_result_are_the_tail_of_its_newest_pod(
    apiserver: EmulatedApiServer, runner: KubernetesRunner, api_client: ApiClient
) -> None:
    labels = objects.training_labels(training_spec())
    create_pod(api_client, "kafkaml-training-7-retry", labels, "2026-01-01T10:05:00Z")
    create_pod(api_client, "kafkaml-training-7-first", labels, "2026-01-01T10:00:00Z")
    serve_pod_logs(apiserver)

    text = runner.logs(WorkloadKind.RESULT, 8, tail_lines=50)

    [listing] = apiserver.requests("list", PODS)
    [read] = apiserver.requests("get", PODS, kmock.subresource("log"))
    assert text == "last lines of kafkaml-training-7-retry\n"
    assert listing.params["labelSelector"] == objects.selector(WorkloadKind.RESULT, 8)
    assert dict(read.params) == {"container": "worker", "tailLines": "50"}


def test_logs_of_an_inference_gather_every_replica_under_its_name(
    apiserver: EmulatedApiServer, runner: KubernetesRunner, api_client: ApiClient
) -> None:
    labels = objects.inference_labels(inference_spec())
    create_pod(api_client, "kafkaml-inference-5-a", labels, "2026-01-01T10:00:00Z")
    create_pod(api_client, "kafkaml-inference-5-b", labels, "2026-01-01T10:00:01Z")
    serve_pod_logs(apiserver)

    text = runner.logs(WorkloadKind.INFERENCE, 5, tail_lines=10)

    assert text == (
        "==> kafkaml-inference-5-a <==\nlast lines of kafkaml-inference-5-a\n\n"
        "==> kafkaml-inference-5-b <==\nlast lines of kafkaml-inference-5-b\n"
    )


def refuse_logs_of_waiting_containers(apiserver: EmulatedApiServer) -> None:
    waiting = 'container "worker" in pod "kafkaml-training-7-x" is waiting to start'
    log_reads = apiserver.emulator["get", PODS, kmock.subresource("log")]
    log_reads << 400 << status(400, "BadRequest", waiting)


def test_logs_of_an_unschedulable_pod_say_why_it_waits(
    apiserver: EmulatedApiServer, runner: KubernetesRunner, api_client: ApiClient
) -> None:
    labels = objects.training_labels(training_spec())
    create_pod(api_client, "kafkaml-training-7-x", labels, "2026-01-01T10:00:00Z")
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    body = {"status": {"phase": "Pending", "conditions": [unschedulable]}}
    client.CoreV1Api(api_client).patch_namespaced_pod_status(
        "kafkaml-training-7-x", NAMESPACE, body
    )
    refuse_logs_of_waiting_containers(apiserver)

    assert runner.logs(WorkloadKind.RESULT, 7) == (
        "(no logs yet: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.)\n"
    )


def test_logs_of_a_container_that_cannot_pull_its_image_say_so(
    apiserver: EmulatedApiServer, runner: KubernetesRunner, api_client: ApiClient
) -> None:
    labels = objects.training_labels(training_spec())
    create_pod(api_client, "kafkaml-training-7-x", labels, "2026-01-01T10:00:00Z")
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "kafkaml:x"'}
    container = {"name": "worker", "image": "kafkaml:x", "imageID": "", "ready": False}
    container |= {"restartCount": 0, "state": {"waiting": waiting}}
    body = {"status": {"phase": "Pending", "containerStatuses": [container]}}
    client.CoreV1Api(api_client).patch_namespaced_pod_status(
        "kafkaml-training-7-x", NAMESPACE, body
    )
    refuse_logs_of_waiting_containers(apiserver)

    assert runner.logs(WorkloadKind.RESULT, 7) == (
        '(no logs yet: ImagePullBackOff: Back-off pulling image "kafkaml:x")\n'
    )


def test_logs_without_any_pod_raise_workload_not_found(runner: KubernetesRunner) -> None:
    with pytest.raises(WorkloadNotFoundError, match="no pod found for inference 9"):
        runner.logs(WorkloadKind.INFERENCE, 9)


def test_a_job_whose_secret_is_refused_is_deleted_again_before_the_error(
    apiserver: EmulatedApiServer, runner: KubernetesRunner
) -> None:
    message = 'secrets is forbidden: User "system:serviceaccount:kafkaml:kafkaml" cannot create'
    apiserver.emulator["post", SECRETS] << 403 << status(403, "Forbidden", message)

    with pytest.raises(RunnerPermissionError) as caught:
        runner.start_training(training_spec())

    [delete] = apiserver.requests("delete", JOBS)
    assert (caught.value.verb, caught.value.resource) == ("create", "secrets")
    assert delete.url.path == "/apis/batch/v1/namespaces/kafkaml/jobs/kafkaml-training-7"
    assert dict(delete.params) == {"propagationPolicy": "Background"}
    with pytest.raises(KeyError):
        apiserver.stored("batch/v1/jobs", "kafkaml-training-7")


def test_starting_a_job_still_being_deleted_raises_workload_terminating(
    apiserver: EmulatedApiServer, runner: KubernetesRunner, api_client: ApiClient
) -> None:
    # A Job held by a finalizer: deleting it only stamps its deletionTimestamp.
    held: Any = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "kafkaml-training-7", "finalizers": ["orphan"]},
    }
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(NAMESPACE, held)
    batch.delete_namespaced_job("kafkaml-training-7", NAMESPACE)

    with pytest.raises(WorkloadTerminatingError, match="jobs kafkaml-training-7 is still being"):
        runner.start_training(training_spec())

    assert apiserver.requests("post", SECRETS) == []


def test_logs_with_a_tail_of_no_lines_is_a_spec_error(runner: KubernetesRunner) -> None:
    with pytest.raises(SpecError) as caught:
        runner.logs(WorkloadKind.RESULT, 7, tail_lines=0)

    assert caught.value.field == "tail_lines"


def test_status_of_a_result_follows_its_job_from_running_to_exited(
    runner: KubernetesRunner, api_client: ApiClient
) -> None:
    assert runner.status(WorkloadKind.RESULT, 7) == WorkloadStatus(
        WorkloadState.NOT_STARTED, "no Job"
    )
    runner.start_training(training_spec())
    batch = client.BatchV1Api(api_client)
    batch.patch_namespaced_job_status("kafkaml-training-7", NAMESPACE, {"status": {"active": 1}})

    assert runner.status(WorkloadKind.RESULT, 8) == WorkloadStatus(
        WorkloadState.RUNNING, "1 active pod(s)"
    )

    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    body = {"status": {"active": 0, "conditions": [failed]}}
    batch.patch_namespaced_job_status("kafkaml-training-7", NAMESPACE, body)

    assert runner.status(WorkloadKind.RESULT, 7) == WorkloadStatus(
        WorkloadState.EXITED, "Failed DeadlineExceeded"
    )


def test_status_of_an_inference_counts_its_ready_replicas(
    runner: KubernetesRunner, api_client: ApiClient
) -> None:
    assert runner.status(WorkloadKind.INFERENCE, 5).state is WorkloadState.NOT_STARTED
    runner.start_inference(inference_spec(replicas=3))
    apps = client.AppsV1Api(api_client)
    body = {"status": {"replicas": 3, "readyReplicas": 2}}
    apps.patch_namespaced_deployment_status("kafkaml-inference-5", NAMESPACE, body)

    assert runner.status(WorkloadKind.INFERENCE, 5) == WorkloadStatus(
        WorkloadState.RUNNING, "2/3 replicas ready"
    )


def test_a_runner_from_a_kubeconfig_authenticates_with_its_token(
    apiserver: EmulatedApiServer, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": str(apiserver.server.url)}}],
                "users": [{"name": "u", "user": {"token": "token-of-kafkaml-backend"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )

    runner = KubernetesRunner(load_api_client(str(kubeconfig)), namespace=NAMESPACE)
    runner.start_inference(inference_spec())

    [post] = apiserver.requests("post", DEPLOYMENTS)
    assert post.headers["Authorization"] == "Bearer token-of-kafkaml-backend"


def test_loading_the_in_cluster_config_outside_a_cluster_raises_runner_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(RunnerError, match="no Kubernetes configuration"):
        load_api_client()
