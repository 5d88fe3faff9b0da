"""Types are part of the suite: `mypy --strict` over every package, the command `make lint` runs
(the packages, the django-stubs and DRF plugins and the per-module settings are pyproject.toml's
[tool.mypy]; its cache in .cache/mypy keeps a second run to seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kafkaml.local import PROJECT_ROOT


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # The django-stubs plugin imports the backend's settings: a fixed key, so none is written.
    env.update(PYTHONPATH=str(PROJECT_ROOT), KAFKAML_SECRET_KEY="mypy-only-" + "x" * 50)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, env=env, timeout=500,
    )  # fmt: skip


def test_every_package_type_checks_under_mypy_strict() -> None:
    checked = _mypy()
    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-2000:]
    assert "no issues found" in checked.stdout


def test_an_untyped_function_and_a_wrong_orm_lookup_fail_the_check(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from backend.apps.training.models import Deployment\n\n"
        "def untyped(x):\n"
        "    return x\n\n"
        "def lookup() -> object:\n"
        '    return Deployment.objects.filter(owner="someone")\n'
    )
    checked = _mypy(str(wrong))
    assert checked.returncode == 1, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "[no-untyped-def]" in checked.stdout  # --strict is on
    assert "Incompatible type for lookup 'owner'" in checked.stdout  # the django plugin is on
