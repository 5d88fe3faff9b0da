"""Incremental, early-exit chain and semi-supervised training: the real job on the real broker."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until
from model_training.job import EXIT_STOPPED
from model_training.tests.jobs import (
    TF_IMPORTS,
    TORCH_IMPORTS,
    JobProcess,
    announce,
    blobs,
    produce_samples,
    ranges_text,
    spec_document,
    start_job,
    tier_code,
    torch_tier_code,
)


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_incremental_job_trains_on_windows_as_they_arrive_and_stops_at_stream_timeout(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, data = new_topic(), new_topic()
    options = {"stream_timeout_ms": 4000, "window": 500}
    spec = spec_document(
        framework, control, 501, mode="incremental", incremental=options, fit_kwargs={"epochs": 2}
    )
    job = start_job(tmp_path, kafka_settings, spec)
    announce(kafka_settings, control, 501, data, incremental=True, validation_rate=0.2, test_rate=0)
    produce_samples(kafka_settings, data, *blobs(500, seed=3))
    wait_until(lambda: len(job.epochs()) >= 2, "training on the first window", timeout_s=120)
    trained_first = len(job.epochs())
    produce_samples(kafka_settings, data, *blobs(500, seed=4))
    wait_until(
        lambda: len(job.epochs()) > trained_first, "training on the second window", timeout_s=60
    )

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    epochs = job.epochs()
    assert [epoch["epoch"] for epoch in epochs] == list(range(len(epochs)))
    assert len(epochs) >= 4 and "accuracy" in epochs[-1]["validation"]
    assert len(job.metrics()["train"]["loss"]) == len(epochs)


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_three_tier_chain_trains_every_exit_and_reports_per_sub_model(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, data = new_topic(), new_topic()
    imports, code = (
        (TF_IMPORTS, tier_code) if framework == "tensorflow" else (TORCH_IMPORTS, torch_tier_code)
    )
    documents = [
        spec_document(
            framework,
            control,
            502,
            result_id=21 + tier,
            mode="distributed",
            imports=imports,
            code=code(tier, 3),
            distributed={"optimizer": "adam", "learning_rate": 0.01, "metrics": ["accuracy"]},
        )
        for tier in range(3)
    ]
    ranges = produce_samples(kafka_settings, data, *blobs(3000, seed=5))
    announce(kafka_settings, control, 502, ranges_text(ranges), total=3000)
    job = start_job(tmp_path, kafka_settings, documents)

    assert job.wait() == 0, job.log()
    for result_id in (21, 22, 23):
        assert job.status(result_id) == ["finished"]
        epochs = job.epochs(result_id)
        assert len(epochs) == 3
        assert set(epochs[-1]["train"]) >= {"loss", "accuracy"}
        assert "accuracy" in epochs[-1]["validation"]
        metrics = job.metrics(result_id)
        assert metrics["test"]["accuracy"] > 0.7
        assert len(metrics["confusion_matrix"]) == 3
        artifact = "artifact.keras" if framework == "tensorflow" else "artifact.pytorch"
        assert job.result(result_id).joinpath(artifact).stat().st_size > 0


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_semi_supervised_job_runs_its_pseudo_label_rounds(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, labeled, unlabeled = new_topic(), new_topic(), new_topic()
    labeled_ranges = produce_samples(kafka_settings, labeled, *blobs(400, seed=6))
    x, _ = blobs(2000, seed=7)
    unlabeled_ranges = produce_samples(kafka_settings, unlabeled, x, None)
    spec = spec_document(
        framework,
        control,
        503,
        mode="semi-supervised",
        semi_supervised={"rounds": 2, "confidence": 0.9},
        fit_kwargs={"epochs": 2},
    )
    announce(
        kafka_settings,
        control,
        503,
        ranges_text(labeled_ranges),
        total=400,
        validation_rate=0.1,
        test_rate=0.25,
        unsupervised_topic=ranges_text(unlabeled_ranges),
    )
    job = start_job(tmp_path, kafka_settings, spec)

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    assert len(job.epochs()) == 2 * (1 + 2)  # the labeled fit, then two rounds
    pseudo = [int(n) for n in re.findall(r"round \d+: (\d+) pseudo-labels", job.log())]
    assert len(pseudo) == 2 and min(pseudo) > 0
    assert job.metrics()["test"]["accuracy"] > 0.8


def test_indefinite_training_publishes_a_snapshot_on_improvement_and_runs_until_stopped(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    options = {
        "indefinite": True,
        "monitoring_metric": "loss",
        "change": "down",
        "improvement": 0.01,
        "window": 300,
    }
    spec = spec_document(
        "pytorch", control, 504, mode="incremental", incremental=options, fit_kwargs={"epochs": 1}
    )
    job = start_job(tmp_path, kafka_settings, spec)
    announce(kafka_settings, control, 504, data, incremental=True, validation_rate=0.2, test_rate=0)
    snapshot = job.result() / "snapshots" / "1" / "metrics.json"
    for window in range(20):
        if snapshot.exists():
            break
        trained = len(job.epochs())
        produce_samples(kafka_settings, data, *blobs(300, seed=10 + window))
        wait_until(_more_epochs(job, trained), f"training on window {window}", timeout_s=120)

    assert snapshot.exists(), job.log()
    assert job.process.poll() is None  # indefinite: still running after its windows
    job.process.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == EXIT_STOPPED, job.log()
    losses = [epoch["validation"]["loss"] for epoch in job.epochs()]
    snapshot_loss = json.loads(snapshot.read_text())["validation"]["loss"][-1]
    assert snapshot_loss <= losses[0] - 0.01


def _more_epochs(job: JobProcess, count: int) -> Callable[[], bool]:
    return lambda: len(job.epochs()) > count
