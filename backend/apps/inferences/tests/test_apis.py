"""Inferences over the REST API and the replicas' job API: create, stop, scale, swap."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from backend.apps.inferences.models import Inference
from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import deployed, finished_result, stored_model

pytestmark = pytest.mark.django_db


def inference_body(result_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "result_id": result_id,
        "replicas": 2,
        "input_format": "RAW",
        "input_config": {"data_type": "float32", "data_reshape": "4"},
        "input_topic": "in",
        "output_topic": "out",
        **changes,
    }


def replica_client(inference_id: int) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('inference', inference_id)}")
    return client


def test_an_inference_of_a_finished_result_is_created_and_served_to_its_replicas(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries), b"model-v1")
    response = api.post("/api/inferences", inference_body(result.pk), format="json")
    assert response.status_code == 201, response.json()
    inference = response.json()
    assert (inference["status"], inference["replicas"]) == ("created", 2)
    replica = replica_client(inference["id"])
    spec = replica.get(f"/api/jobs/inferences/{inference['id']}/spec").json()
    assert spec["framework"] == "tensorflow"
    assert spec["artifact_format"] == "keras"
    assert spec["input_topic"] == "in"
    artifact = replica.get(f"/api/jobs/inferences/{inference['id']}/artifact")
    assert b"".join(artifact.streaming_content) == b"model-v1"  # type: ignore[attr-defined]  # a FileResponse: the stub types every answer as Response
    assert artifact["X-Model-Version"] == spec["model_version"]


@pytest.mark.parametrize("delivery", [None, "exactly-once", "at-least-once"])
def test_the_delivery_chosen_reaches_the_replicas_spec_and_defaults_to_exactly_once(
    api: APIClient, user: Any, summaries: dict[str, Any], delivery: str | None
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    body = inference_body(result.pk, **({"delivery": delivery} if delivery else {}))
    response = api.post("/api/inferences", body, format="json")
    assert response.status_code == 201, response.json()
    inference = response.json()
    assert inference["delivery"] == (delivery or "exactly-once")
    spec = replica_client(inference["id"]).get(f"/api/jobs/inferences/{inference['id']}/spec")
    assert spec.json()["delivery"] == (delivery or "exactly-once")


def test_an_unknown_delivery_is_refused_with_the_field_named(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    body = inference_body(result.pk, delivery="at-most-once")
    response = api.post("/api/inferences", body, format="json")
    assert response.status_code == 400
    assert "delivery" in response.json()["extra"]["fields"]


def test_an_inference_of_an_unfinished_result_is_refused(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    response = api.post("/api/inferences", inference_body(result.pk), format="json")
    assert response.status_code == 409
    assert response.json()["extra"]["status"] == "created"


def test_an_early_exit_tier_needs_both_upper_topic_and_limit(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    only_topic = api.post(
        "/api/inferences", inference_body(result.pk, upper_topic="up"), format="json"
    )
    assert only_topic.status_code == 400
    both = api.post(
        "/api/inferences", inference_body(result.pk, upper_topic="up", limit=0.8), format="json"
    )
    assert both.status_code == 201


def test_scaling_changes_the_replica_count(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    inference = api.post("/api/inferences", inference_body(result.pk), format="json").json()
    response = api.post(f"/api/inferences/{inference['id']}/scale", {"replicas": 5}, format="json")
    assert response.json()["replicas"] == 5
    assert (
        api.post(
            f"/api/inferences/{inference['id']}/scale", {"replicas": 0}, format="json"
        ).status_code
        == 400
    )


def test_swapping_serves_the_other_results_model_under_a_new_version(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(user, summaries)
    first, second = finished_result(user, model, b"v1"), finished_result(user, model, b"v2")
    inference = api.post("/api/inferences", inference_body(first.pk), format="json").json()
    swapped = api.post(
        f"/api/inferences/{inference['id']}/swap", {"result_id": second.pk}, format="json"
    )
    assert swapped.status_code == 200
    assert swapped.json()["result_id"] == second.pk
    assert swapped.json()["model_version"] != inference["model_version"]
    artifact = replica_client(inference["id"]).get(
        f"/api/jobs/inferences/{inference['id']}/artifact"
    )
    assert b"".join(artifact.streaming_content) == b"v2"  # type: ignore[attr-defined]  # a FileResponse: the stub types every answer as Response
    assert artifact["X-Model-Version"] == swapped.json()["model_version"]


def test_an_inference_can_be_stopped_scaled_and_deleted_whatever_its_status(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    inference = api.post("/api/inferences", inference_body(result.pk), format="json").json()
    url = f"/api/inferences/{inference['id']}"
    assert api.post(f"{url}/stop").json()["status"] == "stopped"
    assert api.post(f"{url}/stop").json()["status"] == "stopped"
    scaled = api.post(f"{url}/scale", {"replicas": 3}, format="json").json()
    assert (scaled["status"], scaled["replicas"]) == ("stopped", 3)
    assert api.post(f"{url}/swap", {"result_id": result.pk}, format="json").status_code == 409
    assert api.delete(url).status_code == 204
    assert not Inference.objects.exists()


def test_a_running_inference_is_stopped_by_its_deletion(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    inference = api.post("/api/inferences", inference_body(result.pk), format="json").json()
    assert api.delete(f"/api/inferences/{inference['id']}").status_code == 204
    assert not Inference.objects.exists()


def test_a_result_serving_an_inference_cannot_be_deleted(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    api.post("/api/inferences", inference_body(result.pk), format="json")
    assert api.delete(f"/api/results/{result.pk}").status_code == 409


def test_inference_defaults_come_from_the_previous_inference_of_the_result(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    assert api.get(f"/api/results/{result.pk}/inference-defaults").json()["input_format"] == "RAW"
    api.post(
        "/api/inferences",
        inference_body(result.pk, input_format="JSON", input_config={}),
        format="json",
    )
    defaults = api.get(f"/api/results/{result.pk}/inference-defaults").json()
    assert defaults == {"input_format": "JSON", "input_config": {}}


def test_the_none_runner_reports_the_replicas_as_not_started(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = finished_result(user, stored_model(user, summaries))
    inference = api.post("/api/inferences", inference_body(result.pk), format="json").json()
    body = api.get(f"/api/inferences/{inference['id']}/logs").json()
    assert (body["state"], body["logs"]) == ("not-started", "")
