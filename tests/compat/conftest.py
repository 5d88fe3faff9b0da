"""The compatibility environment (Kafka-ML's client libraries), built once per session."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compat.environment import compat_python

CLIENTS = Path(__file__).parent / "clients"


@pytest.fixture(scope="session")
def kafka_ml_python() -> Path:
    """The interpreter of the environment with Kafka-ML's pinned client libraries."""
    return compat_python()


def run_client(python: Path, script: str, *args: str, stdin: Any = None) -> dict[str, Any]:
    """Run a client of clients/ in the compatibility environment; its JSON answer."""
    done = subprocess.run(
        [str(python), str(CLIENTS / script), *args],
        input=None if stdin is None else json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer
