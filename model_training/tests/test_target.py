"""Target "input": autoencoders train on a stream without labels, the real job on the real
broker, in classic and incremental mode, for both frameworks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until
from model_training.spec import SpecError, parse_spec
from model_training.tests.jobs import (
    FEATURES,
    TF_IMPORTS,
    TORCH_IMPORTS,
    announce,
    produce_samples,
    ranges_text,
    spec_document,
    start_job,
)

# Data only: a label-less stream announces no label_type (every key is b"\x00").
UNLABELED_CONFIG = {"data_type": "float32", "data_reshape": str(FEATURES)}
SAMPLES = 2000

TF_AUTOENCODER = f"""
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=({FEATURES},)),
    keras.layers.Dense(3),
    keras.layers.Dense({FEATURES}),
])
model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
"""
TORCH_AUTOENCODER = f"""
class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear({FEATURES}, 3), nn.Linear(3, {FEATURES}))

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.MSELoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)

    def metrics(self):
        return {{"loss": Loss(self.loss_fn())}}

torch.manual_seed(0)
model = AutoEncoder()
"""
AUTOENCODERS = {
    "tensorflow": (TF_IMPORTS, TF_AUTOENCODER),
    "pytorch": (TORCH_IMPORTS, TORCH_AUTOENCODER),
}


def low_rank(count: int, seed: int = 0) -> Array:
    """Samples on a 2-dimensional plane in FEATURES dimensions (unit variance per feature):
    a 3-unit bottleneck can reproduce them, predicting the mean cannot."""
    plane = np.random.default_rng(42).normal(0, 1, size=(2, FEATURES)) / np.sqrt(2)
    z = np.random.default_rng(seed).normal(0, 1, size=(count, 2))
    samples: Array = (z @ plane).astype(np.float32)
    return samples


def _autoencoder_spec(framework: str, control: str, deployment_id: int, **training: Any) -> Any:
    imports, code = AUTOENCODERS[framework]
    settings = {"target": "input", "confusion_matrix": False, **training}
    return spec_document(framework, control, deployment_id, imports=imports, code=code, **settings)


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_classic_job_with_target_input_learns_to_reproduce_an_unlabeled_stream(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, data = new_topic(), new_topic()
    x = low_rank(SAMPLES)
    ranges = produce_samples(kafka_settings, data, x, None)
    spec = _autoencoder_spec(framework, control, 801, fit_kwargs={"epochs": 8})
    job = start_job(tmp_path, kafka_settings, spec)
    announce(
        kafka_settings, control, 801, ranges_text(ranges), total=SAMPLES,
        input_config=UNLABELED_CONFIG,
    )  # fmt: skip

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    variance = float(x.var(axis=0).mean())  # the loss of predicting the mean
    losses = [epoch["validation"]["loss"] for epoch in job.epochs()]
    assert len(losses) == 8
    assert losses[-1] < 0.1 * variance, losses
    assert job.metrics()["test"]["loss"] < 0.1 * variance
    assert job.metrics()["confusion_matrix"] is None


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_incremental_job_with_target_input_trains_on_windows_without_labels(
    framework: str,
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> None:
    control, data = new_topic(), new_topic()
    options = {"stream_timeout_ms": 4000, "window": 500}
    spec = _autoencoder_spec(
        framework, control, 802, mode="incremental", incremental=options, fit_kwargs={"epochs": 4}
    )
    job = start_job(tmp_path, kafka_settings, spec)
    announce(
        kafka_settings, control, 802, data, incremental=True, validation_rate=0.2, test_rate=0,
        input_config=UNLABELED_CONFIG,
    )  # fmt: skip
    produce_samples(kafka_settings, data, low_rank(1000, seed=1), None)
    wait_until(lambda: len(job.epochs()) >= 4, "training on the first window", timeout_s=120)
    produce_samples(kafka_settings, data, low_rank(1000, seed=2), None)

    assert job.wait() == 0, job.log()
    assert job.status() == ["finished"]
    losses = [epoch["validation"]["loss"] for epoch in job.epochs()]
    assert len(losses) >= 12  # four windows of 500, four epochs each (at least three windows)
    assert losses[-1] < 0.1 * float(low_rank(1000).var(axis=0).mean()), losses


def test_a_job_with_target_label_fails_on_a_stream_without_labels(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    ranges = produce_samples(kafka_settings, data, low_rank(200), None)
    spec = _autoencoder_spec("pytorch", control, 803, target="label")
    job = start_job(tmp_path, kafka_settings, spec)
    announce(
        kafka_settings, control, 803, ranges_text(ranges), total=200,
        input_config=UNLABELED_CONFIG,
    )  # fmt: skip

    assert job.wait() != 0
    assert job.status()[0] == "failed"
    assert "label_type" in job.status()[-1]


@pytest.mark.parametrize("mode", ["semi-supervised", "distributed", "federated"])
def test_target_input_is_refused_in_modes_that_need_labels(mode: str) -> None:
    spec = _autoencoder_spec("pytorch", "control", 804, mode=mode)

    with pytest.raises(SpecError, match="target 'input' needs mode classic or incremental"):
        parse_spec([spec])


def test_target_input_with_a_confusion_matrix_is_refused() -> None:
    spec = _autoencoder_spec("pytorch", "control", 805)
    spec["training"]["confusion_matrix"] = True

    with pytest.raises(SpecError, match="confusion matrix"):
        parse_spec([spec])


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(SpecError, match="target 'output'"):
        parse_spec([_autoencoder_spec("pytorch", "control", 806, target="output")])
