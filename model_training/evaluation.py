"""Predictions over held samples, class decisions and confusion matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from kafkaml.frameworks.base import Array

PREDICT_BATCH = 10_000


def predict_all(model: Any, x: Array, batch_size: int = PREDICT_BATCH) -> list[Array]:
    """The model's outputs for every row of `x`, one array per output (exit), in row order.

    Lower tiers of an early-exit chain return `(to_upper, prediction)`; a chain returns one
    prediction per exit. Both come back as a list of the prediction arrays.
    """
    chunks: list[list[Array]] = []
    for start in range(0, len(x), batch_size):
        out = model.predict_batch(np.asarray(x[start : start + batch_size]))
        chunks.append(list(out) if isinstance(out, tuple) else [out])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


def classes_of(scores: Array) -> Array:
    """Class decisions: the argmax of a score vector, or a single score thresholded at 0.5."""
    flat = scores.reshape(len(scores), -1)
    if flat.shape[1] == 1:
        return np.asarray(flat[:, 0] > 0.5, dtype=np.int64)
    return np.asarray(flat.argmax(axis=1), dtype=np.int64)


def confidences_of(scores: Array) -> Array:
    """How sure each decision is: the largest score, or max(p, 1 - p) for a single score."""
    flat = scores.reshape(len(scores), -1)
    if flat.shape[1] == 1:
        return np.asarray(np.maximum(flat[:, 0], 1 - flat[:, 0]))
    return np.asarray(flat.max(axis=1))


def confusion_matrix(labels: Array, scores: Array) -> list[list[int]] | None:
    """Counts `[true][predicted]` over the classes, or None when the labels are no classes.

    Labels must be one integer per sample (any integer dtype, or floats holding integers).
    """
    flat = np.asarray(labels).reshape(len(labels), -1)
    if flat.shape[1] != 1 or not _integral(flat):
        return None
    truth = flat[:, 0].astype(np.int64)
    if truth.min(initial=0) < 0:
        return None
    predicted = classes_of(scores)
    size = int(max(truth.max(initial=0), predicted.max(initial=0), _width(scores) - 1)) + 1
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix.tolist()  # type: ignore[no-any-return]


def _integral(values: Array) -> bool:
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return True
    return bool(np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0))


def _width(scores: Array) -> int:
    width = int(np.prod(scores.shape[1:]))
    return 2 if width == 1 else width
