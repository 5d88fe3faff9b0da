"""Authentication and ownership, checked over every URL of the URL configuration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signing
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from backend.kafkaml_backend.auth import issue_job_token
from backend.kafkaml_backend.urls import PUBLIC_URL_NAMES
from backend.testing import deployed, finished_result, stored_model

pytestmark = pytest.mark.django_db

JOB_URL_NAMES = {
    "job-result-spec",
    "job-result-running",
    "job-result-epochs",
    "job-result-artifact",
    "job-result-failure",
    "job-result-snapshots",
    "job-result-federated-workers",
    "job-inference-spec",
    "job-inference-artifact",
    "job-datasources",
}


def url_patterns(patterns: list[Any] | None = None, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(name, concrete path) of every URL the backend serves, ids filled in as 1."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield pattern.name or route, "/" + re.sub(r"<int:\w+>", "1", route).lstrip("^")


def view_methods(path: str) -> list[str]:
    match = get_resolver().resolve(path)
    view_class = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    return [m for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)]


ALL_URLS = sorted(url_patterns())
PROTECTED = [(name, path) for name, path in ALL_URLS if name not in PUBLIC_URL_NAMES]


def test_the_enumeration_sees_every_resource() -> None:
    names = {name for name, _ in ALL_URLS}
    assert {
        "models",
        "configurations",
        "deployments",
        "results",
        "datasources",
        "inferences",
        "metrics",
    } <= names
    assert names >= JOB_URL_NAMES


@pytest.mark.parametrize(("name", "path"), PROTECTED)
def test_every_non_public_endpoint_answers_401_without_credentials(name: str, path: str) -> None:
    client = APIClient()
    for method in view_methods(path):
        response = getattr(client, method)(path)
        assert response.status_code == 401, (method, path, response.status_code)
        assert set(response.json()) == {"message", "extra"}


@pytest.mark.parametrize(
    ("name", "path"), [(n, p) for n, p in ALL_URLS if n in PUBLIC_URL_NAMES - {"login"}]
)
def test_public_endpoints_answer_without_credentials(name: str, path: str) -> None:
    assert APIClient().get(path).status_code == 200


@pytest.mark.parametrize(("name", "path"), [(n, p) for n, p in PROTECTED if n not in JOB_URL_NAMES])
def test_a_job_token_is_refused_on_every_non_job_endpoint(name: str, path: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('result', 1)}")
    for method in view_methods(path):
        assert getattr(client, method)(path).status_code == 401, (method, path)


@pytest.mark.parametrize(("name", "path"), [(n, p) for n, p in ALL_URLS if n in JOB_URL_NAMES])
def test_user_credentials_are_refused_on_every_job_endpoint(
    name: str, path: str, api: APIClient
) -> None:
    for method in view_methods(path):
        assert getattr(api, method)(path).status_code == 401, (method, path)


def test_a_job_token_for_one_result_is_refused_for_another_result(
    user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(user, summaries)
    mine = deployed(user, [model]).results.get()
    other = deployed(user, [model]).results.get()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('result', mine.pk)}")
    assert client.get(f"/api/jobs/results/{mine.pk}/spec").status_code == 200
    for action in ("spec", "running", "epochs", "artifact", "failure"):
        method = client.get if action == "spec" else client.post
        assert method(f"/api/jobs/results/{other.pk}/{action}").status_code == 403
    other.refresh_from_db()
    assert other.status == "created"


def test_a_result_token_is_not_an_inference_token(user: Any, summaries: dict[str, Any]) -> None:
    result = finished_result(user, stored_model(user, summaries))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('result', result.pk)}")
    assert client.get(f"/api/jobs/inferences/{result.pk}/spec").status_code == 401
    assert client.post("/api/jobs/datasources", {}, format="json").status_code == 401


def test_an_expired_or_tampered_job_token_is_refused(user: Any, summaries: dict[str, Any]) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    token = issue_job_token("result", result.pk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token[:-2]}xx")
    assert client.get(f"/api/jobs/results/{result.pk}/spec").status_code == 401
    from django.conf import settings

    expired = settings.KAFKAML.model_copy(update={"job_token_max_age_s": -1})
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    with override_settings(KAFKAML=expired):
        response = client.get(f"/api/jobs/results/{result.pk}/spec")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    forged = signing.TimestampSigner(salt="kafkaml.job-token.result", key="not-our-key")
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {forged.sign_object({'kind': 'result', 'id': result.pk})}"
    )
    assert client.get(f"/api/jobs/results/{result.pk}/spec").status_code == 401


def test_user_a_can_neither_read_nor_change_user_bs_objects(
    api: APIClient, other_user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(other_user, summaries)
    result = finished_result(other_user, model)
    deployment = result.deployment
    assert deployment is not None
    configuration = deployment.configuration
    other_api = APIClient()
    from backend.apps.accounts.services import user_api_token

    other_api.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=other_user)}")
    inference = other_api.post(
        "/api/inferences",
        {"result_id": result.pk, "input_format": "RAW", "input_topic": "i", "output_topic": "o"},
        format="json",
    ).json()
    reads = [
        f"/api/models/{model.pk}",
        f"/api/configurations/{configuration.pk}",
        f"/api/deployments/{deployment.pk}",
        f"/api/deployments/{deployment.pk}/results",
        f"/api/results/{result.pk}",
        f"/api/results/{result.pk}/artifact",
        f"/api/results/{result.pk}/logs",
        f"/api/results/{result.pk}/inference-defaults",
        f"/api/inferences/{inference['id']}",
    ]
    for path in reads:
        assert api.get(path).status_code == 404, path
    writes = [
        ("patch", f"/api/models/{model.pk}", {"name": "mine"}),
        ("delete", f"/api/models/{model.pk}", None),
        ("patch", f"/api/configurations/{configuration.pk}", {"name": "mine"}),
        ("delete", f"/api/deployments/{deployment.pk}", None),
        ("post", f"/api/results/{result.pk}/stop", None),
        ("post", f"/api/inferences/{inference['id']}/stop", None),
        ("post", f"/api/inferences/{inference['id']}/scale", {"replicas": 3}),
    ]
    for method, path, body in writes:
        assert getattr(api, method)(path, body, format="json").status_code == 404, path
    for collection in (
        "models",
        "configurations",
        "deployments",
        "results",
        "inferences",
        "datasources",
    ):
        assert api.get(f"/api/{collection}").json() == [], collection
    assert other_api.get(f"/api/models/{model.pk}").json()["name"] == "m"
    assert other_api.get(f"/api/inferences/{inference['id']}").json()["replicas"] == 1


def test_staff_users_see_everyones_objects(
    make_user: Any, other_user: Any, summaries: dict[str, Any]
) -> None:
    model = stored_model(other_user, summaries)
    staff = APIClient()
    staff.force_authenticate(make_user("root", staff=True))
    assert staff.get(f"/api/models/{model.pk}").status_code == 200


def test_a_session_login_authenticates_the_ui_and_logout_ends_it(user: Any) -> None:
    client = APIClient(enforce_csrf_checks=False)
    wrong = client.post("/api/auth/login", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 401
    assert client.get("/api/models").status_code == 401
    login = client.post(
        "/api/auth/login", {"username": "alice", "password": "pw-alice"}, format="json"
    )
    assert login.status_code == 200
    assert client.get("/api/auth/me").json()["username"] == "alice"
    token = client.post("/api/auth/token").json()["token"]
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/models").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/models").status_code == 200


def test_prometheus_metrics_are_served_to_the_service_token() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('service')}")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content
