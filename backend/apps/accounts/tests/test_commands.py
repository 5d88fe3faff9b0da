"""The management commands `make run` uses: the admin user and the control logger's token."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_ensure_admin_prints_a_random_password_once_and_it_logs_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKAML_ADMIN_PASSWORD", raising=False)
    first = run_command("ensure_admin")
    password = first.split("password: ")[1].split()[0]
    assert authenticate(username="admin", password=password) is not None
    second = run_command("ensure_admin")
    assert "exists" in second
    assert password not in second


def test_ensure_admin_takes_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAML_ADMIN_PASSWORD", "chosen-secret")
    output = run_command("ensure_admin")
    assert "chosen-secret" not in output
    user = authenticate(username="admin", password="chosen-secret")
    assert user is not None and user.is_staff


def test_the_issued_service_token_records_datasources_and_nothing_else(tmp_path: Path) -> None:
    run_command("issue_service_token", "--output", str(tmp_path / "token"))
    token = (tmp_path / "token").read_text()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    # Authenticated (the body is what is wrong), unlike on a user endpoint.
    assert client.post("/api/jobs/datasources", {}, format="json").status_code == 400
    assert client.get("/api/models").status_code == 401
