"""What the example computes around the platform: the scaler written into the model code, the
reconstruction error of each reading, the threshold from validation readings, and precision
and recall against the simulator's ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
PERCENTILE = 99.0  # of the validation readings' errors: the anomaly threshold


@dataclass(frozen=True)
class Scaler:
    """Standardization with the training data's mean and spread (a constant field, such as
    the firmware of a healthy fleet, keeps spread 1)."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array) -> Scaler:
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 1e-6, std, 1.0))


def reconstruction_errors(x: Array, reconstructed: Array, scaler: Scaler) -> Array:
    """Mean squared error of each reading in standardized units (the training loss)."""
    return np.asarray((((reconstructed - x) / scaler.std) ** 2).mean(axis=1))


def threshold(validation_errors: Array, percentile: float = PERCENTILE) -> float:
    """The error above which a reading is an anomaly: a high percentile of normal readings'."""
    return float(np.percentile(validation_errors, percentile))


def precision_recall(predicted: Array, truth: Array) -> tuple[float, float]:
    """Precision and recall of boolean predictions against boolean ground truth."""
    true_positives = int((predicted & truth).sum())
    precision = true_positives / max(int(predicted.sum()), 1)
    recall = true_positives / max(int(truth.sum()), 1)
    return precision, recall
