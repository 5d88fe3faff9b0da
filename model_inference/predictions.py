"""Turning one micro-batch of model outputs into record values, and early-exit routing.

Per-record Python work is what limits a Python stream processor, so a prediction of numbers is
written for the whole batch at once (`json_documents`: one orjson call, split into rows); only
outputs orjson cannot write (object or complex arrays) take the per-row `json` path.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kafkaml.protocol.json_format import json_documents

# Each output value: `{"values": [...]}`, the field Kafka-ML's consumers read.
_OUTPUT_FIELD = "values"


class ModelOutputError(RuntimeError):
    """The model's output does not fit the batch or the inference's configuration."""


def format_values(prediction: NDArray[Any]) -> list[bytes]:
    """One `{"values": [...]}` JSON document per row of `prediction` (leading axis = batch).

    A 1-D prediction gives one-element lists; rows of more than one dimension keep their nesting
    (as Kafka-ML's `prediction[i].tolist()` did). Floats are written in the shortest form that
    parses back to the identical value of their dtype. NaN and infinities become `null`, so
    every value is valid JSON.
    """
    if prediction.ndim == 1:
        prediction = prediction.reshape(-1, 1)
    documents = json_documents(prediction, _OUTPUT_FIELD)
    if documents is None:  # a dtype orjson does not write, e.g. object or complex
        return [_json_row(row) for row in prediction.tolist()]
    return documents


def _json_row(row: Any) -> bytes:
    return json.dumps({"values": _finite_or_none(row)}, separators=(",", ":")).encode()


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def forward_mask(prediction: NDArray[Any], limit: float) -> NDArray[Any]:
    """Which rows an early-exit tier forwards upwards: those whose highest value is below `limit`.

    Kafka-ML compares the limit with `max(prediction_row)` (a softmax confidence).
    """
    rows = _flat_rows(prediction)
    if rows.shape[1] == 0:
        raise ModelOutputError("the early-exit prediction has no values to compare with the limit")
    return np.asarray(rows.max(axis=1) < limit)


def tensor_rows(tensor: NDArray[Any]) -> list[bytes]:
    """Each row of an intermediate tensor as float32 bytes (C order), for the upper tier."""
    rows = np.ascontiguousarray(_flat_rows(tensor), dtype=np.float32)
    data, size = rows.tobytes(), rows.shape[1] * 4
    return [data[index * size : (index + 1) * size] for index in range(len(rows))]


def _flat_rows(array: NDArray[Any]) -> NDArray[Any]:
    """The array as (rows, values per row), also when it has no rows."""
    return array.reshape(len(array), int(np.prod(array.shape[1:], dtype=np.int64)))


def split_output(
    output: NDArray[Any] | tuple[NDArray[Any], ...], batch_size: int, early_exit: bool
) -> tuple[NDArray[Any] | None, NDArray[Any]]:
    """`(to_upper, prediction)` from what `predict_batch` returned, checked against the batch.

    An early-exit tier must return a pair; a pair given to a tier without an upper topic is
    answered with its prediction (the exit head). Raises ModelOutputError otherwise.
    """
    if isinstance(output, tuple):
        if len(output) != 2:
            raise ModelOutputError(
                f"the model returned {len(output)} outputs; expected one, "
                "or two (to_upper, prediction) for an early-exit tier"
            )
        to_upper, prediction = (np.asarray(part) for part in output)
    elif early_exit:
        raise ModelOutputError(
            "an early-exit tier (upper topic and limit set) needs a model that returns "
            "(to_upper, prediction)"
        )
    else:
        to_upper, prediction = None, np.asarray(output)
    for name, part in (("prediction", prediction), ("to_upper", to_upper)):
        if part is not None and (part.ndim == 0 or len(part) != batch_size):
            raise ModelOutputError(
                f"the model's {name} has shape {part.shape} for a batch of {batch_size} records"
            )
    return (to_upper if early_exit else None), prediction
