"""Logins are throttled per user name and per address, and refused from a foreign Origin."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def login(client: APIClient, username: str, password: str, **headers: Any) -> Any:
    body = {"username": username, "password": password}
    return client.post("/api/auth/login", body, format="json", **headers)


def test_a_hundred_wrong_passwords_get_429s_and_then_the_right_one_waits_too(user: Any) -> None:
    client = APIClient()
    statuses = [login(client, "alice", f"guess-{i}").status_code for i in range(100)]
    assert statuses[:5] == [401] * 5  # KAFKAML_LOGIN_FAILURES_PER_USER
    assert set(statuses[5:]) == {429}
    right = login(client, "alice", "pw-alice")
    assert right.status_code == 429
    body = right.json()
    assert set(body) == {"message", "extra"} and "Too many failed logins" in body["message"]
    assert 0 < body["extra"]["retry_after_s"] <= 300
    assert int(right["Retry-After"]) == body["extra"]["retry_after_s"]


def test_failed_logins_are_counted_per_user_name_from_every_address(user: Any) -> None:
    for index in range(5):
        login(APIClient(REMOTE_ADDR=f"10.0.0.{index}"), "alice", "nope")
    assert login(APIClient(REMOTE_ADDR="10.0.1.1"), "alice", "pw-alice").status_code == 429


def test_failed_logins_are_counted_per_address_across_user_names(
    make_user: Any, settings: Any
) -> None:
    settings.KAFKAML = settings.KAFKAML.model_copy(update={"login_failures_per_address": 3})
    make_user("carol")
    attacker = APIClient(REMOTE_ADDR="10.9.9.9")
    assert [login(attacker, f"user{i}", "x").status_code for i in range(3)] == [401] * 3
    assert login(attacker, "carol", "pw-carol").status_code == 429
    assert login(APIClient(REMOTE_ADDR="10.9.9.10"), "carol", "pw-carol").status_code == 200


def test_a_successful_login_counts_no_failure(user: Any) -> None:
    client = APIClient()
    for _ in range(10):
        assert login(client, "alice", "pw-alice").status_code == 200


@pytest.mark.parametrize("form", [True, False])
def test_a_login_from_a_foreign_origin_is_refused(user: Any, form: bool) -> None:
    client = APIClient()
    if form:
        response = client.generic(
            "POST",
            "/api/auth/login",
            "username=alice&password=pw-alice",
            content_type="application/x-www-form-urlencoded",
            HTTP_ORIGIN="http://evil.example",
        )
    else:
        response = login(client, "alice", "pw-alice", HTTP_ORIGIN="http://evil.example")
    assert response.status_code == 403, response.content
    assert response.json()["extra"] == {"origin": "http://evil.example"}
    assert "sessionid" not in response.cookies


def test_a_cross_site_browser_login_without_origin_is_refused(user: Any) -> None:
    response = login(APIClient(), "alice", "pw-alice", HTTP_SEC_FETCH_SITE="cross-site")
    assert response.status_code == 403


def test_a_login_from_the_own_or_a_trusted_origin_or_a_program_is_accepted(
    user: Any, settings: Any
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["http://ui.example:5173"]
    for headers in (
        {"HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "http://ui.example:5173"},
        {},
    ):
        assert login(APIClient(), "alice", "pw-alice", **headers).status_code == 200, headers
