"""Request parsing is bounded everywhere, and every refusal has the `{"message", "extra"}` shape."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import stored_model

pytestmark = pytest.mark.django_db


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"message", "extra"} and isinstance(body["message"], str)
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def configuration_id(api: APIClient, user: Any, summaries: dict[str, Any]) -> int:
    model = stored_model(user, summaries)
    response = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model.pk]}, format="json"
    )
    return int(response.json()["id"])


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_fit_kwargs_nested_deep_is_a_400_in_the_error_shape(
    api: APIClient, configuration_id: int, depth: int
) -> None:
    fit_kwargs = f'{{"a": {nested(depth)}}}'
    body = (
        f'{{"configuration_id": {configuration_id}, "batch_size": 4, "fit_kwargs": {fit_kwargs}}}'
    )
    response = api.generic("POST", "/api/deployments", body, content_type="application/json")
    error = assert_error_shape(response, 400)
    assert "deep" in str(error).lower()


@pytest.mark.parametrize(
    ("fit_kwargs", "named"),
    [
        ({"epochs": 10**30}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": "5"}, "epochs"),
        ({"steps_per_epoch": 10**12}, "steps_per_epoch"),
        ({"max_epochs": 10**6}, "max_epochs"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_numeric_training_arguments_beyond_their_bounds_are_refused_by_name(
    api: APIClient, configuration_id: int, fit_kwargs: dict[str, Any], named: str
) -> None:
    body = {"configuration_id": configuration_id, "batch_size": 4, "fit_kwargs": fit_kwargs}
    error = assert_error_shape(api.post("/api/deployments", body, format="json"), 400)
    assert named in error["extra"]["fields"]["fit_kwargs"]


def test_sane_training_arguments_are_accepted(api: APIClient, configuration_id: int) -> None:
    fit_kwargs = {"epochs": 5, "steps_per_epoch": None, "shuffle": True, "verbose": 0}
    body = {"configuration_id": configuration_id, "batch_size": 4, "fit_kwargs": fit_kwargs}
    response = api.post("/api/deployments", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["fit_kwargs"] == fit_kwargs


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_size_limit_is_a_413_in_the_error_shape(
    api: APIClient, content_type: str
) -> None:
    body = '{"name": "' + "x" * 20_000 + '"}'
    response = api.generic("POST", "/api/configurations", body, content_type=content_type)
    error = assert_error_shape(response, 413)
    assert error["extra"]["limit_bytes"] == 10_000


@override_settings(KAFKAML_MAX_UPLOAD_BYTES=10_000)
def test_a_multipart_upload_over_its_size_limit_is_a_413_before_it_is_read(
    api: APIClient,
) -> None:
    artifact = io.BytesIO(b"x" * 20_000)
    artifact.name = "model.pt"
    response = api.post(
        "/api/models/import",
        {"name": "n", "framework": "pytorch", "artifact": artifact},
        format="multipart",
    )
    error = assert_error_shape(response, 413)
    assert error["extra"]["limit_bytes"] == 10_000


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_multipart_fields_over_the_size_limit_are_a_413_in_the_error_shape(
    api: APIClient,
) -> None:
    response = api.post(
        "/api/models/import",
        {"name": "n", "description": "x" * 20_000, "framework": "pytorch"},
        format="multipart",
    )
    assert_error_shape(response, 413)


def test_a_request_json_that_is_not_json_is_a_400_in_the_error_shape(api: APIClient) -> None:
    response = api.generic("POST", "/api/configurations", "{nope", content_type="application/json")
    assert_error_shape(response, 400)


def test_a_control_message_with_offsets_beyond_int64_is_refused_not_a_server_error() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('service')}")
    value = {
        "topic": f"d:0:0:{2**70}",
        "input_format": "RAW",
        "input_config": {"data_type": "float32"},
        "total_msg": 2**70,
    }
    body = {"deployment_id": 1, "control_topic": "c", "partition": 0, "offset": 0, "value": value}
    error = assert_error_shape(client.post("/api/jobs/datasources", body, format="json"), 400)
    assert "largest offset" in error["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": 5, "ml_model_ids": [1]}, "name"),
        ({"name": "c", "ml_model_ids": ["1"]}, "ml_model_ids"),
        ({"name": "c", "ml_model_ids": 1}, "ml_model_ids"),
        ({"name": "c", "ml_model_ids": [True]}, "ml_model_ids"),
    ],
)
def test_json_values_of_the_wrong_type_are_refused_not_coerced(
    api: APIClient, body: dict[str, Any], named: str
) -> None:
    error = assert_error_shape(api.post("/api/configurations", body, format="json"), 400)
    assert named in error["extra"]["fields"]


@pytest.mark.parametrize("text", ["1.0", " 1", "1_0", "+1", "x"])
def test_a_query_integer_must_be_plain_digits(api: APIClient, text: str) -> None:
    error = assert_error_shape(api.get("/api/datasources", {"deployment_id": text}), 400)
    assert "deployment_id" in error["extra"]["fields"]
    assert api.get("/api/datasources", {"deployment_id": "1"}).status_code == 200


def test_a_deployment_sent_as_a_form_is_refused_not_taken_without_its_options(
    api: APIClient, configuration_id: int
) -> None:
    response = api.post(
        "/api/deployments",
        {"configuration_id": configuration_id, "batch_size": 8, "distributed": "anything"},
        format="multipart",
    )
    assert_error_shape(response, 415)
