"""Classic training, run as the real job process against the real broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until
from model_training.tests.jobs import (
    CLASSES,
    announce,
    blobs,
    produce_samples,
    ranges_text,
    spec_document,
    start_job,
)

SAMPLES = 3000


def _check_trained(
    job_metrics: dict[str, Any], epochs: list[dict[str, Any]], expected_epochs: int
) -> None:
    assert [epoch["epoch"] for epoch in epochs] == list(range(expected_epochs))
    assert all("loss" in e["train"] and "accuracy" in e["validation"] for e in epochs)
    assert job_metrics["test"]["accuracy"] > 0.8  # chance is 1/3
    matrix = np.array(job_metrics["confusion_matrix"])
    assert matrix.shape == (CLASSES, CLASSES)
    assert matrix.sum() == int(SAMPLES * 0.2)  # the test part
    assert np.trace(matrix) / matrix.sum() > 0.8
    assert len(job_metrics["train"]["loss"]) == expected_epochs


def test_tensorflow_job_started_before_the_data_trains_on_it(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic(partitions=2)
    job = start_job(tmp_path, kafka_settings, spec_document("tensorflow", control, 301))
    wait_until(lambda: job.result().joinpath("status").exists(), "the job to start", timeout_s=120)
    x, y = blobs(SAMPLES)
    ranges = produce_samples(kafka_settings, data, x, y, partitions=2)
    announce(kafka_settings, control, 301, ranges_text(ranges), total=SAMPLES)

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    _check_trained(job.metrics(), job.epochs(), 3)
    assert job.metrics()["seed"] == 7
    assert job.result().joinpath("artifact.keras").stat().st_size > 0


def test_pytorch_job_trains_on_data_announced_before_it_started(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    spec = spec_document("pytorch", control, 302)  # created before the announcement
    x, y = blobs(SAMPLES, seed=1)
    ranges = produce_samples(kafka_settings, data, x, y)
    announce(kafka_settings, control, 302, ranges_text(ranges), total=SAMPLES)
    job = start_job(tmp_path, kafka_settings, spec)

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    _check_trained(job.metrics(), job.epochs(), 3)
    assert job.result().joinpath("artifact.pytorch").stat().st_size > 0


@pytest.mark.parametrize("framework", ["tensorflow"])
def test_tfio_reader_trains_the_same_model_to_a_comparable_accuracy(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, data = new_topic(), new_topic(partitions=2)
    x, y = blobs(SAMPLES, seed=2)
    ranges = produce_samples(kafka_settings, data, x, y, partitions=2)
    spec = spec_document(framework, control, 303, reader="tfio")
    announce(kafka_settings, control, 303, ranges_text(ranges), total=SAMPLES)
    job = start_job(tmp_path, kafka_settings, spec)

    assert job.wait() == 0, job.log()
    assert "training data reader tfio" in job.log()
    _check_trained(job.metrics(), job.epochs(), 3)
