"""The web UI against the real stack: its static checks, its API types, and a browser flow.

The browser test starts what `make run` starts (tests/web_ui_stack.py) on free ports with a data
dir of its own, on the test broker, and drives Debian's chromium through Playwright
(frontend/e2e/). Screenshots land in frontend/test-results/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from kafkaml import frontend
from kafkaml.settings import PROJECT_ROOT
from tests.web_ui_stack import ui_stack

# A fixed backend port for a run by hand (an engineer's port range); a free one by default.
UI_PORT = int(os.environ.get("KAFKAML_TEST_UI_PORT") or 0)
CHROMIUM = os.environ.get("KAFKAML_TEST_CHROMIUM", "/usr/bin/chromium")
needs_node = pytest.mark.skipif(shutil.which("npm") is None, reason="the web UI needs Node.js")


def npx(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        ["npx", "--no-install", *args], cwd=frontend.FRONTEND, text=True, capture_output=True,
        env={**os.environ, **(env or {})}, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"npx {' '.join(args)}:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def built() -> None:
    """node_modules from package-lock.json (npm ci only when it changed) and a current build."""
    frontend.build()


@needs_node
def test_api_types_are_generated_from_the_backends_current_schema(built: None) -> None:
    assert frontend.API_TYPES.read_text() == frontend.api_types(), (
        "frontend/src/api/schema.d.ts is out of date with /api/schema/: run `make api-types`"
    )


@needs_node
def test_frontend_type_checks_lints_and_unit_tests_pass(built: None) -> None:
    npx("tsc", "--noEmit", "-p", "tsconfig.json")
    npx("eslint", "--max-warnings", "0", ".")
    npx("vitest", "run")


@pytest.fixture(scope="module")
def stack(
    built: None, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The local stack's services on a free port, their own data dir and control topic."""
    with ui_stack(kafka_bootstrap, tmp_path_factory.mktemp("web-ui-stack"), UI_PORT) as env:
        yield env


@needs_node
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_a_user_trains_deploys_and_watches_a_model_in_the_browser(stack: dict[str, str]) -> None:
    npx(
        "playwright", "test", "--reporter=line",
        env={**stack, "KAFKAML_TEST_CHROMIUM": CHROMIUM, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=900,
    )  # fmt: skip


@needs_node
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no chromium at {CHROMIUM}")
def test_the_api_keeps_answering_while_five_live_views_are_open(stack: dict[str, str]) -> None:
    """Runs after the browser flow, whose inference it watches."""
    url = stack["KAFKAML_UI_URL"]
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    login = json.dumps({"username": "admin", "password": stack["KAFKAML_UI_PASSWORD"]}).encode()
    opener.open(
        urllib.request.Request(
            f"{url}/api/auth/login", login, {"Content-Type": "application/json"}
        ),
        timeout=30,
    ).close()
    with opener.open(f"{url}/api/inferences", timeout=30) as answer:
        inference = json.load(answer)[0]["id"]
    stream = f"{url}/api/inferences/{inference}/visualization/stream"
    viewers = [
        opener.open(
            urllib.request.Request(stream, headers={"Accept": "text/event-stream"}), timeout=30
        )
        for _ in range(5)
    ]
    try:
        for viewer in viewers:
            assert viewer.headers["Content-Type"].startswith("text/event-stream")
            assert viewer.readline().startswith(b"retry:")
        for _ in range(10):
            with opener.open(f"{url}/api/models", timeout=10) as answer:
                assert answer.status == 200
    finally:
        for viewer in viewers:
            viewer.close()
