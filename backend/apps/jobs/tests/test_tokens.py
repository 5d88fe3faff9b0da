"""A job token works while its result or inference runs, and is refused once it has ended."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import deployed, finished_result, stored_model

pytestmark = pytest.mark.django_db


def bearer(kind: Any, object_id: int) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token(kind, object_id)}")
    return client


@pytest.mark.parametrize("end", ["failure", "stop"])
def test_a_result_token_reads_its_spec_until_the_result_ends(
    api: APIClient, user: Any, summaries: dict[str, Any], end: str
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    job = bearer("result", result.pk)
    assert job.post(f"/api/jobs/results/{result.pk}/running").status_code == 200
    assert job.get(f"/api/jobs/results/{result.pk}/spec").status_code == 200
    if end == "failure":
        ended = job.post(f"/api/jobs/results/{result.pk}/failure", {"reason": "x"}, format="json")
    else:
        ended = api.post(f"/api/results/{result.pk}/stop")
    assert ended.status_code == 200, ended.json()
    for method, path in [("get", "spec"), ("post", "epochs"), ("post", "running")]:
        response = getattr(job, method)(f"/api/jobs/results/{result.pk}/{path}", {}, format="json")
        assert response.status_code == 409, (path, response.json())
        assert response.json()["message"].startswith("This job token's result has ended")


def test_a_finished_results_token_no_longer_reads_the_model_code(
    user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    response = bearer("result", result.pk).get(f"/api/jobs/results/{result.pk}/spec")
    assert response.status_code == 409
    assert response.json()["extra"] == {"status": "finished"}


def test_an_inference_token_is_refused_once_the_inference_stopped(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    body = {"result_id": result.pk, "input_format": "RAW", "input_topic": "i", "output_topic": "o"}
    inference = api.post("/api/inferences", body, format="json").json()
    replica = bearer("inference", inference["id"])
    assert replica.get(f"/api/jobs/inferences/{inference['id']}/spec").status_code == 200
    assert api.post(f"/api/inferences/{inference['id']}/stop").status_code == 200
    for path in ("spec", "artifact"):
        response = replica.get(f"/api/jobs/inferences/{inference['id']}/{path}")
        assert response.status_code == 409, path
        assert response.json()["extra"] == {"status": "stopped"}


def test_metrics_are_for_staff_and_the_service_token_only(make_user: Any) -> None:
    from backend.conftest import token_client

    assert token_client(make_user("plain")).get("/metrics").status_code == 403
    assert token_client(make_user("root", staff=True)).get("/metrics").status_code == 200
    assert bearer("service", 0).get("/metrics").status_code == 200
    assert bearer("result", 1).get("/metrics").status_code == 401
