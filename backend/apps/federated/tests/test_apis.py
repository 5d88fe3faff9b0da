"""Federated workers over the REST API: registration with a credential shown once, discovery
of the deployments their datasets fit, joining, the coordinator's keys, and revocation."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from backend.apps.federated.models import FederatedWorker
from backend.apps.training.models import TrainingMode, TrainingResult
from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import deployed, stored_model
from kafkaml.federated import credential_hash, signing_key

pytestmark = pytest.mark.django_db

THERMAL = {"name": "thermal", "input_shape": [4], "dataset_restrictions": {"sensor": "thermal"},
           "samples": 500}  # fmt: skip


def register(api: APIClient, *datasets: dict[str, Any], name: str = "site-a") -> dict[str, Any]:
    response = api.post(
        "/api/federated/workers", {"name": name, "datasets": list(datasets)}, format="json"
    )
    assert response.status_code == 201, response.json()
    return dict(response.json())


def as_worker(credential: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


def as_job(result: TrainingResult) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('result', result.pk)}")
    return client


def federated(user: Any, summaries: dict[str, Any], **options: Any) -> TrainingResult:
    model = stored_model(user, summaries)  # Keras, input (None, 4)
    federated = {"min_data": 100, "data_restrictions": {"sensor": "thermal"}, **options}
    deployment = deployed(user, [model], mode=TrainingMode.FEDERATED, federated=federated)
    return deployment.results.get()


def test_the_credential_is_shown_once_and_kept_only_as_its_hash_and_signing_key(
    api: APIClient,
) -> None:
    created = register(api, THERMAL)
    credential = created["credential"]
    assert credential.startswith(f"kmlw.{created['worker_id']}.")
    stored = FederatedWorker.objects.get(pk=created["id"])
    assert credential not in str(stored.__dict__)
    assert stored.credential_hash == credential_hash(credential)
    assert stored.signing_key == signing_key(credential).hex()
    for body in (api.get(f"/api/federated/workers/{created['id']}").json(),
                 api.get("/api/federated/workers").json()[0]):  # fmt: skip
        assert "credential" not in body and "signing_key" not in body
        assert body["datasets"] == [THERMAL]
    me = as_worker(credential).get("/api/federated/worker")
    assert me.status_code == 200 and me.json()["worker_id"] == created["worker_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "datasets": []},
        {"name": "x", "datasets": [{**THERMAL, "input_shape": ["4"]}]},
        {"name": "x", "datasets": [{**THERMAL, "samples": "500"}]},
        {"name": "x", "datasets": [{**THERMAL, "samples": 0}]},
        {"name": "x", "datasets": [THERMAL, THERMAL]},
        {"name": "x", "datasets": [{**THERMAL, "dataset_restrictions": "sensor=thermal"}]},
    ],
)
def test_a_malformed_worker_is_refused_with_the_field_named(
    api: APIClient, body: dict[str, Any]
) -> None:
    response = api.post("/api/federated/workers", body, format="json")
    assert response.status_code == 400, response.json()
    assert "datasets" in response.json()["extra"]["fields"]


def test_a_wrong_or_foreign_credential_gets_401_in_the_error_shape(
    api: APIClient, anonymous: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    credential = register(api, THERMAL)["credential"]
    result = federated(user, summaries)
    for client in (as_worker(credential[:-2] + "xx"), as_worker("kmlw.nobody.x"), anonymous,
                   api, as_job(result)):  # fmt: skip
        response = client.get("/api/federated/worker/deployments")
        assert response.status_code == 401, response.json()
        assert set(response.json()) == {"message", "extra"}


def test_discovery_lists_only_the_deployments_the_datasets_fit(
    api: APIClient, user: Any, other_user: Any, summaries: dict[str, Any]
) -> None:
    fits = federated(user, summaries)
    federated(user, summaries, data_restrictions={"sensor": "optical"})
    federated(user, summaries, min_data=1000)
    federated(user, summaries, data_restrictions={})  # fits, but ended:
    ended = TrainingResult.objects.filter(deployment__federated__data_restrictions={}).get()
    ended.status = "failed"
    ended.save()
    federated(other_user, summaries)  # another owner's
    wide = {**THERMAL, "name": "wide", "input_shape": [5]}
    worker = as_worker(register(api, wide, THERMAL)["credential"])
    matches = worker.get("/api/federated/worker/deployments").json()
    assert [(m["deployment_id"], m["result_id"], m["dataset"], m["joined"]) for m in matches] == [
        (fits.deployment_id, fits.pk, "thermal", False)
    ]
    assert matches[0]["framework"] == "tensorflow" and matches[0]["federated"]["min_data"] == 100


def test_a_worker_joins_a_fitting_deployment_and_its_coordinator_alone_gets_the_key(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result, other = federated(user, summaries), federated(user, summaries)
    a, b = register(api, THERMAL, name="a"), register(api, THERMAL, name="b")
    joined = as_worker(a["credential"]).post(
        f"/api/federated/worker/deployments/{result.deployment_id}/join"
    )
    assert joined.status_code == 200, joined.json()
    assert joined.json()["dataset"] == "thermal"
    as_worker(b["credential"]).post(f"/api/federated/worker/deployments/{other.deployment_id}/join")
    keys = as_job(result).get(f"/api/jobs/results/{result.pk}/federated-workers")
    assert keys.json() == [
        {"worker_id": a["worker_id"], "name": "a",
         "signing_key": signing_key(a["credential"]).hex()}
    ]  # fmt: skip
    again = as_job(result).get(f"/api/jobs/results/{other.pk}/federated-workers")
    assert again.status_code == 403, "a job token reads only its own result's workers"
    listed = as_worker(a["credential"]).get("/api/federated/worker/deployments").json()
    assert {m["deployment_id"]: m["joined"] for m in listed} == {
        result.deployment_id: True, other.deployment_id: False
    }  # fmt: skip


def test_joining_a_deployment_the_datasets_do_not_fit_says_why(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    optical = federated(user, summaries, data_restrictions={"sensor": "optical"})
    worker = as_worker(register(api, THERMAL)["credential"])
    refused = worker.post(f"/api/federated/worker/deployments/{optical.deployment_id}/join")
    assert refused.status_code == 400
    assert "restrictions" in refused.json()["extra"]["datasets"]["thermal"]
    missing = worker.post("/api/federated/worker/deployments/999999/join")
    assert missing.status_code == 404 and missing.json()["extra"] == {"id": 999999}


def test_a_revoked_worker_is_refused_everywhere_and_no_longer_given_to_its_coordinator(
    api: APIClient, other_api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = federated(user, summaries)
    created = register(api, THERMAL)
    worker = as_worker(created["credential"])
    worker.post(f"/api/federated/worker/deployments/{result.deployment_id}/join")
    path = f"/api/jobs/results/{result.pk}/federated-workers"
    assert len(as_job(result).get(path).json()) == 1
    assert other_api.delete(f"/api/federated/workers/{created['id']}").status_code == 404
    assert api.delete(f"/api/federated/workers/{created['id']}").status_code == 204
    assert api.get(f"/api/federated/workers/{created['id']}").json()["revoked_at"] is not None
    assert as_job(result).get(path).json() == []
    refused = worker.get("/api/federated/worker/deployments")
    assert refused.status_code == 401
    assert refused.json()["message"] == "This worker's credential has been revoked."
    assert api.delete(f"/api/federated/workers/{created['id']}").status_code == 204


def test_joining_an_id_beyond_any_column_is_404(api: APIClient) -> None:
    worker = as_worker(register(api, THERMAL)["credential"])
    response = worker.post(f"/api/federated/worker/deployments/{2**70}/join")
    assert response.status_code == 404, response.json()
