"""The web UI at `/`: index.html for the app's routes; the backend's own paths keep answering."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client


@pytest.fixture
def built_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "index.html").write_text('<!doctype html><div id="root"></div>')
    monkeypatch.setattr(
        settings, "KAFKAML", settings.KAFKAML.model_copy(update={"frontend_dir": tmp_path})
    )
    return tmp_path


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/models", "/results/7", "/inferences/3/visualization"])
def test_every_route_of_the_app_answers_its_index_page(built_ui: Path, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200
    assert b'<div id="root">' in response.content
    assert "no-cache" in response["Cache-Control"]
    assert "csrftoken" in response.cookies  # the app's first POST (sign in) has its CSRF cookie


@pytest.mark.django_db
def test_the_backends_own_paths_are_not_the_apps(built_ui: Path) -> None:
    client = Client()
    assert client.get("/api/health").json()["status"] == "ok"
    missing = client.get("/api/no-such-thing")
    assert missing.status_code == 404 and missing.json()["message"] == "Not found."
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/admin/").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


@pytest.mark.django_db
def test_without_a_build_the_root_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        settings, "KAFKAML", settings.KAFKAML.model_copy(update={"frontend_dir": tmp_path})
    )
    assert b"make run" in Client().get("/models").content
