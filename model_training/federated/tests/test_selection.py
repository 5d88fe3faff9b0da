"""A worker takes part only when its dataset fits the deployment's model and criteria."""

from __future__ import annotations

import numpy as np
import pytest

from kafkaml.frameworks import get_framework
from model_training.dataset import Samples, split
from model_training.federated.worker import LocalDataset, NotSelectedError, check_selected
from model_training.tests.jobs import FEATURES, MODELS

PLAN = {"min_data": 10, "data_restrictions": {"sensor": "thermal"}}


def _dataset(features: int, samples: int = 20, sensor: str = "thermal") -> LocalDataset:
    x = np.zeros((samples, features), np.float32)
    parts = split(Samples(x, np.zeros((samples, 1), np.uint8)), 0.0, 0.0, 0)
    return LocalDataset(parts, samples, {"sensor": sensor, "site": "north"})


@pytest.fixture(scope="module")
def model() -> object:
    return get_framework("pytorch").build(*MODELS["pytorch"])


def test_a_matching_dataset_is_selected(model: object) -> None:
    check_selected(model, _dataset(FEATURES), PLAN)


@pytest.mark.parametrize(
    ("dataset", "reason"),
    [
        (_dataset(FEATURES + 1), "do not fit input"),
        (_dataset(FEATURES, sensor="optical"), "restrictions"),
        (_dataset(FEATURES, samples=5), "min_data"),
    ],
)
def test_a_dataset_that_does_not_fit_is_not_selected(
    model: object, dataset: LocalDataset, reason: str
) -> None:
    with pytest.raises(NotSelectedError, match=reason):
        check_selected(model, dataset, PLAN)
