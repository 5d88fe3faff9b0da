"""The import contracts of pyproject.toml (import-linter) hold: the backend's layers are apps ->
runners -> kafkaml, and the library and the workers never import the backend. A runner that
imports an app again (the old circle runners -> apps -> runners) fails this test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from backend.kafkaml_backend.config import PROJECT_ROOT


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    answer = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=PROJECT_ROOT,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "Contracts: 2 kept, 0 broken." in answer.stdout
