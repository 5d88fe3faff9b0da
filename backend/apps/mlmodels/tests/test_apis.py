"""Models and configurations over the REST API (model code validated by the real executor)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from backend.apps.mlmodels.models import MLModel
from backend.testing import BAD_CODE, TF_MODEL, stored_model

pytestmark = pytest.mark.django_db


def test_creating_a_model_with_bad_code_returns_400_with_the_executors_message_and_line(
    api: APIClient,
) -> None:
    imports, code = BAD_CODE
    response = api.post(
        "/api/models",
        {"name": "bad", "framework": "tensorflow", "imports": imports, "code": code},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "undefined_layer" in body["message"]
    assert body["extra"]["line"] == 2
    assert not MLModel.objects.exists()


def test_creating_a_valid_model_stores_it_with_the_executors_summary(api: APIClient) -> None:
    response = api.post(
        "/api/models",
        {
            "name": "dense",
            "framework": TF_MODEL.framework,
            "imports": TF_MODEL.imports,
            "code": TF_MODEL.code,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["summary"]["output_shape"][-1] == 3
    assert api.get(f"/api/models/{body['id']}").json()["name"] == "dense"


def test_renaming_a_model_keeps_its_code_and_summary(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(user, summaries)
    response = api.patch(f"/api/models/{model.pk}", {"name": "renamed"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert response.json()["summary"] == summaries["tf"]


def test_changing_a_models_code_to_bad_code_is_refused_and_keeps_the_old_code(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(user, summaries)
    response = api.patch(f"/api/models/{model.pk}", {"code": BAD_CODE[1]}, format="json")
    assert response.status_code == 400
    assert response.json()["extra"]["line"] == 2
    model.refresh_from_db()
    assert model.code == TF_MODEL.code


def test_a_model_with_an_unknown_framework_is_refused_with_field_errors(api: APIClient) -> None:
    response = api.post(
        "/api/models", {"name": "x", "framework": "sklearn", "code": "model=1"}, format="json"
    )
    assert response.status_code == 400
    assert "framework" in response.json()["extra"]["fields"]


def test_choosing_the_top_of_a_chain_adds_the_whole_chain_to_a_configuration(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    cloud = stored_model(user, summaries, "chain0", name="cloud")
    edge = stored_model(user, summaries, "chain1", name="edge", upper=cloud)
    plain = stored_model(user, summaries, name="plain")
    response = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [cloud.pk, plain.pk]}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["ml_model_ids"] == sorted([cloud.pk, edge.pk, plain.pk])
    assert api.get(f"/api/models/{cloud.pk}").json()["lower_id"] == edge.pk


def test_a_model_cannot_be_the_upper_tier_of_two_models(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    cloud = stored_model(user, summaries, "chain0", name="cloud")
    stored_model(user, summaries, "chain1", name="edge", upper=cloud)
    other = stored_model(user, summaries, "chain1", name="edge2")
    response = api.patch(f"/api/models/{other.pk}", {"upper_id": cloud.pk}, format="json")
    assert response.status_code == 400
    assert "upper_id" in response.json()["extra"]["fields"]


def test_a_model_used_by_a_configuration_cannot_be_deleted(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(user, summaries)
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [model.pk]}, format="json"
    ).json()
    assert api.delete(f"/api/models/{model.pk}").status_code == 409
    assert api.delete(f"/api/configurations/{configuration['id']}").status_code == 204
    assert api.delete(f"/api/models/{model.pk}").status_code == 204
    assert api.get(f"/api/models/{model.pk}").status_code == 404


def test_a_configuration_of_unknown_models_is_refused(api: APIClient) -> None:
    response = api.post("/api/configurations", {"name": "c", "ml_model_ids": [999]}, format="json")
    assert response.status_code == 400
    assert "ml_model_ids" in response.json()["extra"]["fields"]


def test_configuration_models_are_fixed_once_deployed(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    first, second = stored_model(user, summaries), stored_model(user, summaries, "pytorch")
    configuration = api.post(
        "/api/configurations", {"name": "c", "ml_model_ids": [first.pk]}, format="json"
    ).json()
    api.post(
        "/api/deployments",
        {"configuration_id": configuration["id"], "batch_size": 4},
        format="json",
    )
    response = api.patch(
        f"/api/configurations/{configuration['id']}", {"ml_model_ids": [second.pk]}, format="json"
    )
    assert response.status_code == 409
    renamed = api.patch(
        f"/api/configurations/{configuration['id']}", {"name": "new"}, format="json"
    )
    assert renamed.json()["name"] == "new"
    assert api.delete(f"/api/configurations/{configuration['id']}").status_code == 409
