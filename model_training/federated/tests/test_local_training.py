"""The worker's local fit on both frameworks: weights in and out, and FedProx's pull."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from model_training.federated.aggregation import proximal_term
from model_training.tests.jobs import MODELS, blobs


def _fit(framework_name: str, model: Any, epochs: int = 3) -> None:
    x, y = blobs(256, seed=3)
    y = y if framework_name == "tensorflow" else y.astype(np.int64)

    def source() -> Any:
        for start in range(0, len(x), 32):
            yield x[start : start + 32], y[start : start + 32]

    get_framework(framework_name).fit(model, source, fit_kwargs={"epochs": epochs})


def _distance(weights: list[Array], anchor: list[Array]) -> float:
    return proximal_term(weights, anchor, 2.0)  # mu 2: the plain squared distance


@pytest.mark.parametrize("framework_name", ["pytorch", "tensorflow"])
def test_weights_load_into_a_fresh_model_and_fedprox_keeps_training_near_the_global(
    framework_name: str,
) -> None:
    framework = get_framework(framework_name)
    imports, code = MODELS[framework_name]
    model = framework.build(imports, code)
    anchor = model.get_weights()
    shifted = [w + 0.5 if np.issubdtype(w.dtype, np.floating) else w for w in anchor]
    fresh = framework.build(imports, code)
    fresh.set_weights(shifted)
    for got, want in zip(fresh.get_weights(), shifted, strict=True):
        np.testing.assert_array_equal(got, want)

    model.set_weights(anchor)
    _fit(framework_name, model)
    free = _distance(model.get_weights(), anchor)

    model.set_weights(anchor)
    model.set_proximal(50.0)
    _fit(framework_name, model)
    held = _distance(model.get_weights(), anchor)
    assert held < free / 2, (held, free)

    model.set_weights(anchor)
    model.set_proximal(0.0)  # the term is gone again
    _fit(framework_name, model)
    assert _distance(model.get_weights(), anchor) > held
