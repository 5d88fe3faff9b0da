"""The anomaly detector: a scaler fitted on the first training window and kept with the model,
an autoencoder trained window by window through the platform's Framework (the same `build`,
`fit` and `predict_batch` a training job and an inference replica call), and a threshold on
the reconstruction error taken from validation data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from examples.connected_car.models import CODE
from kafkaml.frameworks import get_framework
from model_training.dataset import array_batches

Array = np.ndarray[Any, Any]


@dataclass
class Scaler:
    """Standardization with the training data's mean and spread."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array) -> Scaler:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-6, std, 1.0))

    def transform(self, x: Array) -> Array:
        return ((x - self.mean) / self.std).astype(np.float32)


@dataclass
class Detector:
    """Autoencoder + scaler + threshold; `version` counts the windows it was trained on."""

    framework_name: str
    epochs_per_window: int = 8
    batch_size: int = 32
    percentile: float = 99.0
    scaler: Scaler | None = None
    threshold: float | None = None
    version: int = 0
    model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.framework = get_framework(self.framework_name)
        imports, code = CODE[self.framework_name]
        self.model = self.framework.build(imports, code)

    def train_window(self, x_normal: Array) -> None:
        """One incremental step on a window of normal readings (the first fixes the scaler)."""
        if self.scaler is None:
            self.scaler = Scaler.fit(x_normal)
        xs = self.scaler.transform(x_normal)
        order = np.random.default_rng(self.version).permutation(len(xs))
        batches = array_batches(xs[order], xs[order], self.batch_size)
        self.framework.fit(self.model, batches, fit_kwargs={"epochs": self.epochs_per_window})
        self.version += 1

    def scores(self, x: Array) -> Array:
        """Mean squared reconstruction error of each reading."""
        assert self.scaler is not None, "train before scoring"
        xs = self.scaler.transform(x)
        reconstructed = np.asarray(self.model.predict_batch(xs))
        return np.asarray(((reconstructed - xs) ** 2).mean(axis=1))

    def calibrate(self, x_validation: Array) -> float:
        """Set the threshold to the `percentile` of the validation readings' scores."""
        self.threshold = float(np.percentile(self.scores(x_validation), self.percentile))
        return self.threshold

    def flag(self, x: Array) -> tuple[Array, Array]:
        """(scores, is_anomaly) of the readings."""
        assert self.threshold is not None, "calibrate before flagging"
        scores = self.scores(x)
        return scores, scores > self.threshold

    def save(self, folder: Path) -> None:
        """The scaler and threshold beside the model, so scoring uses what training saw."""
        assert self.scaler is not None
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            folder / "scaler.npz",
            mean=self.scaler.mean,
            std=self.scaler.std,
            threshold=np.array(self.threshold),
            version=np.array(self.version),
        )


def precision_recall(predicted: Array, truth: Array) -> tuple[float, float]:
    """Precision and recall of boolean predictions against boolean ground truth."""
    true_positives = int((predicted & truth).sum())
    precision = true_positives / max(int(predicted.sum()), 1)
    recall = true_positives / max(int(truth.sum()), 1)
    return precision, recall
