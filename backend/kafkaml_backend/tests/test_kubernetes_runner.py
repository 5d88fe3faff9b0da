"""The kubernetes runner through the API, against the kmock API emulator over real HTTP: the
backend creates and deletes Jobs and Deployments, the reconciler fails results whose Job failed
and records an inference's replica health from its pods.

kmock runs no controllers and no kubelet: the tests play them through the Kubernetes API, by
patching a Job's status, creating an inference's pods from its Deployment's labels and writing
the pods' status (Ready condition, restartCount, lastState) as the kubelet would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from kubernetes import client
from kubernetes.client import ApiClient
from rest_framework.test import APIClient

from backend.kafkaml_backend.runners.kubernetes import cluster_api_client, start_reconciler
from backend.testing import finished_result, stored_model
from kafkaml.k8s import objects
from kafkaml.k8s.tests.conftest import NAMESPACE, EmulatedApiServer, create_pod, report_container
from kafkaml.testing import wait_until

DEADLINE_S = 20.0


@pytest.fixture
def cluster(
    transactional_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiClient]:
    """An emulated cluster that the backend reaches through a kubeconfig file."""
    with EmulatedApiServer() as server:
        url = str(server.server.url).rstrip("/")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                    "users": [{"name": "backend", "user": {"token": "unused"}}],
                    "contexts": [
                        {"name": "kmock", "context": {"cluster": "kmock", "user": "backend"}}
                    ],
                    "current-context": "kmock",
                }
            )
        )
        update = {"runner": "kubernetes", "kubeconfig": str(kubeconfig)}
        monkeypatch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update=update))
        monkeypatch.setenv("KAFKAML_K8S_NAMESPACE", NAMESPACE)
        cluster_api_client.cache_clear()
        api_client = server.api_client()
        yield api_client
        api_client.close()  # type: ignore[no-untyped-call]
        cluster_api_client.cache_clear()


def _deploy(api: APIClient, user: User, summaries: dict[str, Any]) -> int:
    model = stored_model(user, summaries, "pytorch")
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model.pk]}, format="json"
    ).json()
    body = {"configuration_id": configuration["id"], "batch_size": 8, "gpus": 1}
    response = api.post("/api/deployments", body, format="json")
    assert response.status_code == 201, response.json()
    results = api.get(f"/api/deployments/{response.json()['id']}/results").json()
    return int(results[0]["id"])


def _jobs(api_client: ApiClient, result_id: int) -> list[client.V1Job]:
    batch = client.BatchV1Api(api_client)
    jobs = batch.list_namespaced_job(NAMESPACE, label_selector=f"kafkaml.io/result-{result_id}")
    return list(jobs.items)


def _fail_job_and_wait(api: APIClient, cluster: ApiClient, result_id: int) -> dict[str, Any]:
    """Play the Job controller: the Job of `result_id` reached its backoff limit. Returns the
    result once the backend recorded it failed."""
    condition = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    body = {"status": {"conditions": [condition], "failed": 1}}
    name = f"kafkaml-training-{result_id}"
    client.BatchV1Api(cluster).patch_namespaced_job_status(name, NAMESPACE, body)
    return wait_until(
        lambda: (r := api.get(f"/api/results/{result_id}").json())["status"] == "failed" and r,
        f"result {result_id} to fail",
        timeout_s=DEADLINE_S,
    )


def test_a_deployment_runs_as_a_job_with_the_results_token_and_a_stop_deletes_it(
    api: APIClient, user: User, summaries: dict[str, Any], cluster: ApiClient
) -> None:
    result_id = _deploy(api, user, summaries)

    [job] = _jobs(cluster, result_id)
    container = cast(Any, job).spec.template.spec.containers[0]  # every model field is Optional
    env = {var.name: var for var in container.env}
    assert env["KAFKAML_RESULT_IDS"].value == str(result_id)
    assert env["KAFKAML_JOB_TOKEN"].value_from.secret_key_ref is not None
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert api.get(f"/api/results/{result_id}/logs").json()["state"] == "running"

    assert api.post(f"/api/results/{result_id}/stop").status_code == 200
    assert _jobs(cluster, result_id) == []
    assert api.get(f"/api/results/{result_id}").json()["status"] == "stopped"


def test_the_reconciler_fails_a_result_whose_job_failed_and_ignores_a_stopped_one(
    api: APIClient, user: User, summaries: dict[str, Any], cluster: ApiClient
) -> None:
    failing, stopped = _deploy(api, user, summaries), _deploy(api, user, summaries)
    stop = threading.Event()
    thread = start_reconciler(cluster, stop, idle_timeout_seconds=1.0, retry_delay_s=0.05)
    try:
        failed = _fail_job_and_wait(api, cluster, failing)
        assert "BackoffLimitExceeded" in failed["error"]

        # A stop deletes the Job before it finished, which the reconciler reports: the stopped
        # result stays stopped. (kmock lists both Jobs for one result's selector, so this stop
        # deletes the failed Job too: the failed result keeps its first reason.)
        assert api.post(f"/api/results/{stopped}/stop").status_code == 200
        wait_until(
            lambda: _jobs(cluster, stopped) == [], "the Job to be deleted", timeout_s=DEADLINE_S
        )
        # One watch thread handles Job events in order: once a later Job's failure is recorded,
        # the deletes before it were handled too.
        _fail_job_and_wait(api, cluster, _deploy(api, user, summaries))
        assert api.get(f"/api/results/{stopped}").json()["status"] == "stopped"
        assert api.get(f"/api/results/{failing}").json()["error"] == failed["error"]
    finally:
        stop.set()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()


def test_an_inference_runs_as_a_deployment_that_scales_and_a_stop_deletes_it(
    api: APIClient, user: User, summaries: dict[str, Any], cluster: ApiClient
) -> None:
    result = finished_result(user, stored_model(user, summaries, "pytorch"))
    body = {
        "result_id": result.pk,
        "replicas": 2,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": "in",
        "output_topic": "out",
    }
    inference_id = api.post("/api/inferences", body, format="json").json()["id"]
    apps = client.AppsV1Api(cluster)
    name = f"kafkaml-inference-{inference_id}"

    assert apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas == 2
    assert api.get(f"/api/inferences/{inference_id}/logs").json()["state"] == "running"
    response = api.post(f"/api/inferences/{inference_id}/scale", {"replicas": 3}, format="json")
    assert response.status_code == 200
    assert apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas == 3

    assert api.post(f"/api/inferences/{inference_id}/stop").status_code == 200
    assert api.get(f"/api/inferences/{inference_id}/logs").json()["state"] == "not-started"


@pytest.fixture
def reconciler(cluster: ApiClient) -> Iterator[None]:
    stop = threading.Event()
    thread = start_reconciler(
        cluster, stop, idle_timeout_seconds=1.0, retry_delay_seconds=0.05, retry_delay_s=0.05
    )
    yield
    stop.set()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()


def _start_inference(api: APIClient, user: User, summaries: dict[str, Any]) -> int:
    result = finished_result(user, stored_model(user, summaries, "pytorch"))
    body = {
        "result_id": result.pk,
        "replicas": 2,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": "in",
        "output_topic": "out",
    }
    response = api.post("/api/inferences", body, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def _replica_pods(cluster: ApiClient, inference_id: int) -> list[str]:
    """Play the ReplicaSet controller: one pod per replica, labelled as the Deployment's
    template is, all ready (the kubelet's part). Returns the pods' names."""
    apps = client.AppsV1Api(cluster)
    deployment = apps.read_namespaced_deployment(f"kafkaml-inference-{inference_id}", NAMESPACE)
    metadata = cast(client.V1ObjectMeta, deployment.spec.template.metadata)
    labels = cast(dict[str, str], metadata.labels)
    assert labels[objects.LABEL_INFERENCE_ID] == str(inference_id)
    replicas = cast(int, deployment.spec.replicas)
    names = [f"kafkaml-inference-{inference_id}-{i}" for i in range(replicas)]
    for name in names:
        create_pod(cluster, name, labels, {})
        report_container(cluster, name, ready=True, restarts=0, state={"running": {}})
    return names


def _inference_when(api: APIClient, inference_id: int, what: str, **fields: Any) -> Any:
    def matches() -> Any:
        body = api.get(f"/api/inferences/{inference_id}").json()
        return all(body[k] == v for k, v in fields.items()) and body

    return wait_until(matches, what, timeout_s=DEADLINE_S)


def test_a_pod_restart_leaves_the_inference_running_with_its_restart_count(
    api: APIClient,
    user: User,
    summaries: dict[str, Any],
    cluster: ApiClient,
    reconciler: None,
) -> None:
    inference_id = _start_inference(api, user, summaries)
    first, _ = _replica_pods(cluster, inference_id)
    _inference_when(api, inference_id, "both replicas ready", status="running", ready_replicas=2)

    # The kubelet restarts the container of the first pod after it was SIGKILLed.
    killed = {"reason": "Error", "exitCode": 137, "finishedAt": "2026-01-01T00:00:00Z"}
    report_container(
        cluster, first, ready=True, restarts=1, state={"running": {}}, last_exit=killed
    )

    body = _inference_when(api, inference_id, "the restart recorded", restarts=1)
    assert body["status"] == "running"
    assert body["ready_replicas"] == 2
    assert body["last_exit_reason"] == f"pod {first}: Error (exit code 137)"
    assert body["error"] in ("", None)


def test_repeated_crashes_of_a_pod_fail_the_inference_with_the_reason(
    api: APIClient,
    user: User,
    summaries: dict[str, Any],
    cluster: ApiClient,
    reconciler: None,
) -> None:
    limit = settings.KAFKAML.crash_loop_limit
    inference_id = _start_inference(api, user, summaries)
    first, _ = _replica_pods(cluster, inference_id)
    _inference_when(api, inference_id, "both replicas ready", status="running", ready_replicas=2)

    crashed = {"reason": "Error", "exitCode": 1, "finishedAt": "2026-01-01T00:00:00Z"}
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
    report_container(
        cluster, first, ready=False, restarts=limit - 1, state=waiting, last_exit=crashed
    )
    body = _inference_when(api, inference_id, "the restarts recorded", restarts=limit - 1)
    assert body["status"] == "running"  # below the limit a crash loop is still restarts
    assert body["ready_replicas"] == 1

    report_container(cluster, first, ready=False, restarts=limit, state=waiting, last_exit=crashed)

    body = _inference_when(api, inference_id, "the inference to fail", status="failed")
    assert body["error"] == (
        f"CrashLoopBackOff: container worker of pod {first} restarted {limit} times "
        f"(crash-loop limit {limit}); its last exit: Error (exit code 1)"
    )
    assert body["ready_replicas"] == 0
