"""A training job against the real backend over HTTP: spec, running, epochs, artifact, failure.

The job is the real `python -m model_training` process; the data and the control message go
through the real broker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from pytest_django.live_server_helper import LiveServer  # noqa: E402

from backend.apps.mlmodels.models import Configuration, MLModel  # noqa: E402
from backend.apps.training.models import Deployment, TrainingResult  # noqa: E402
from backend.kafkaml_backend.auth import issue_job_token  # noqa: E402
from kafkaml.kafka import KafkaSettings  # noqa: E402
from model_training.job import EXIT_FAILED  # noqa: E402
from model_training.tests.jobs import (  # noqa: E402
    TORCH_CODE,
    TORCH_IMPORTS,
    announce,
    blobs,
    produce_samples,
    ranges_text,
    start_job,
)


@pytest.fixture
def backend(transactional_db: None) -> Iterator[str]:
    server = LiveServer("127.0.0.1:0")
    yield server.url
    server.stop()


@pytest.fixture
def control_topic(new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh control topic that the backend's spec names (no other test's messages)."""
    topic = new_topic()
    monkeypatch.setattr(
        settings, "KAFKAML", settings.KAFKAML.model_copy(update={"control_topic": topic})
    )
    return topic


def _result() -> TrainingResult:
    owner = get_user_model().objects.create_user(  # type: ignore[attr-defined]
        username="trainer", password="pw"
    )
    model = MLModel.objects.create(
        owner=owner, name="net", framework="pytorch", imports=TORCH_IMPORTS, code=TORCH_CODE
    )
    configuration = Configuration.objects.create(owner=owner, name="one")
    configuration.ml_models.add(model)
    deployment = Deployment.objects.create(
        owner=owner,
        configuration=configuration,
        batch_size=64,
        fit_kwargs={"epochs": 2},
        confusion_matrix=True,
    )
    return TrainingResult.objects.create(owner=owner, deployment=deployment, model=model)


def _job_env(backend: str, result: TrainingResult) -> dict[str, Any]:
    return {
        "KAFKAML_BACKEND_URL": backend,
        "KAFKAML_RESULT_IDS": str(result.pk),
        "KAFKAML_JOB_TOKEN": issue_job_token("result", result.pk),
        "KAFKAML_TRAINING_SPEC_FILE": "",
        "KAFKAML_TRAINING_OUTPUT_DIR": "",
    }


def test_job_reports_running_epochs_and_its_trained_model_to_the_backend(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    backend: str,
    control_topic: str,
) -> None:
    result = _result()
    data = new_topic()
    ranges = produce_samples(kafka_settings, data, *blobs(2000))
    announce(kafka_settings, control_topic, result.deployment_id, ranges_text(ranges), total=2000)
    job = start_job(tmp_path, kafka_settings, {}, **_job_env(backend, result))

    assert job.wait() == 0, job.log()
    result.refresh_from_db()
    assert result.status == "finished", result.error
    assert [epoch["epoch"] for epoch in result.epochs] == [0, 1]
    assert result.test_metrics["accuracy"] > 0.8
    assert len(result.confusion_matrix) == 3
    assert result.artifact_format == "pytorch" and result.artifact.size > 0


def test_bad_data_sets_the_backend_result_failed_with_the_records_location(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    backend: str,
    control_topic: str,
) -> None:
    result = _result()
    data = new_topic()
    x, y = blobs(50)
    produce_samples(kafka_settings, data, x[:, :5].copy(), y)  # 20-byte samples, 32 expected
    announce(kafka_settings, control_topic, result.deployment_id, f"{data}:0:0:50", total=50)
    job = start_job(tmp_path, kafka_settings, {}, **_job_env(backend, result))

    assert job.wait() == EXIT_FAILED, job.log()
    result.refresh_from_db()
    assert result.status == "failed"
    assert f"topic {data}, partition 0, offset 0" in result.error
