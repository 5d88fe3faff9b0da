"""The OpenAPI document describes the error responses and the constraints the API enforces."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def document(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(document["paths"][path][method]["responses"])


ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def test_every_error_response_has_the_message_and_extra_shape(document: dict[str, Any]) -> None:
    assert set(document["components"]["schemas"]["ErrorBody"]["required"]) == {"message", "extra"}
    errors = [
        answer
        for operations in document["paths"].values()
        for operation in operations.values()
        for status, answer in operation["responses"].items()
        if status >= "400"
    ]
    assert len(errors) > 100
    assert all(answer["content"]["application/json"]["schema"] == ERROR_REF for answer in errors)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/api/auth/login", {"400", "401", "403", "413", "429"}),
        ("get", "/api/models", {"401", "403"}),
        ("post", "/api/deployments", {"400", "401", "403", "404", "409", "413", "503"}),
        ("get", "/api/results/{id}", {"401", "403", "404"}),
        ("post", "/api/results/{id}/stop", {"401", "403", "404", "409"}),
        ("get", "/api/datasources", {"400", "401", "403"}),
        ("get", "/api/jobs/results/{id}/spec", {"401", "403", "404", "409"}),
    ],
)
def test_operations_document_the_errors_they_give(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    documented = {status for status in responses(document, method, path) if status >= "400"}
    assert documented == statuses


def test_the_constraints_the_serializers_enforce_are_in_the_document(
    document: dict[str, Any],
) -> None:
    [deployment_id] = document["paths"]["/api/datasources"]["get"]["parameters"]
    assert (deployment_id["schema"]["minimum"], deployment_id["schema"]["maximum"]) == (
        1,
        2**63 - 1,
    )
    schemas = document["components"]["schemas"]
    fit_kwargs = schemas["DeploymentCreateInputRequest"]["properties"]["fit_kwargs"]
    assert fit_kwargs["properties"]["epochs"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100_000,
    }
    assert schemas["MLModelCreateInputRequest"]["properties"]["code"]["maxLength"] == 1_000_000
