"""Federated against centralized training: three workers hold label-skewed (non-IID) shares of
scikit-learn's digits; the coordinator and the workers exchange weights over the real broker
(in one process, workers in threads). With the same model and the same number of epochs
(rounds x local epochs), the federated model's test accuracy is within 2 points of the model
trained on the union. KAFKAML_FEDERATED_FULL=1 runs more epochs."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient
from sklearn.datasets import load_digits

from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, ensure_topics
from model_training.dataset import Samples, split
from model_training.federated.coordinator import round_plan
from model_training.federated.exchange import ExchangeTopics, exchange_topics
from model_training.federated.simulation import federation
from model_training.federated.worker import LocalDataset, batch_source

FULL = os.environ.get("KAFKAML_FEDERATED_FULL") == "1"
EPOCHS = 30 if FULL else 10
BATCH = 32
KEYS = {f"worker-{i}": f"key-{i}".encode() for i in range(3)}
GROUPS = ((0, 1, 2), (3, 4, 5), (6, 7, 8, 9))  # worker i mostly holds the digits of GROUPS[i]
MODELS = {
    "tensorflow": (
        "import keras",
        "model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation='relu'),"
        " keras.layers.Dense(10, activation='softmax')])\n"
        "model.compile(optimizer=keras.optimizers.Adam(0.01),"
        " loss='sparse_categorical_crossentropy', metrics=['accuracy'])",
    ),
    "pytorch": (
        "import torch\nfrom torch import nn\nfrom ignite.metrics import Accuracy, Loss",
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.layers = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n"
        "    def forward(self, x):\n"
        "        return self.layers(x)\n"
        "    def loss_fn(self):\n"
        "        return nn.CrossEntropyLoss()\n"
        "    def optimizer(self):\n"
        "        return torch.optim.Adam(self.parameters(), lr=0.01)\n"
        "    def metrics(self):\n"
        "        return {'loss': Loss(self.loss_fn()), 'accuracy': Accuracy()}\n"
        "model = Net()",
    ),
}


def digits_shares(seed: int = 0) -> tuple[list[LocalDataset], tuple[Array, Array]]:
    """Three label-skewed training shares (70 % of a worker's samples from its own digits) and
    a held-out test set of a quarter of the data."""
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    test, train = order[: len(x) // 4], order[len(x) // 4 :]
    own = np.array([next(i for i, g in enumerate(GROUPS) if label in g) for label in y[train]])
    owner = np.where(rng.random(len(train)) < 0.7, own, rng.integers(0, 3, len(train)))
    shares = []
    for index in range(3):
        rows = train[owner == index]
        parts = split(Samples(x[rows], y[rows].reshape(-1, 1)), 0.0, 0.0, seed)
        shares.append(LocalDataset(parts, len(parts.train), {}))
    return shares, (x[test], y[test])


def _seed(framework: str) -> None:
    if framework == "pytorch":
        import torch

        torch.manual_seed(0)
    else:
        import keras

        keras.utils.set_random_seed(0)


def accuracy(model: Any, test: tuple[Array, Array]) -> float:
    x, y = test
    predicted = np.asarray(model.predict_batch(x)).argmax(axis=1)
    return float((predicted == y).mean())


@pytest.fixture
def topics(kafka_admin: AdminClient) -> Iterator[ExchangeTopics]:
    topics = exchange_topics(random.randrange(10**6, 2**31), prefix="test-federated-accuracy")
    ensure_topics(kafka_admin, [topics.global_weights, topics.updates])
    yield topics
    for future in kafka_admin.delete_topics([topics.global_weights, topics.updates]).values():
        future.result(timeout=30)


def centralized(framework: str, shares: list[LocalDataset], initial: list[Array]) -> Any:
    """The model, from the `initial` weights, trained on the union of the shares for EPOCHS
    epochs."""
    adapter = get_framework(framework)
    model = adapter.build(*MODELS[framework])
    model.set_weights(initial)
    arrays = [share.parts.train.arrays() for share in shares]
    x = np.concatenate([a[0] for a in arrays])
    y = np.concatenate([a[1] for a in arrays if a[1] is not None])
    order = np.random.default_rng(1).permutation(len(x))
    adapter.fit(model, batch_source(framework, (x[order], y[order]), BATCH),
                fit_kwargs={"epochs": EPOCHS})  # fmt: skip
    return model


def federated(
    framework: str,
    shares: list[LocalDataset],
    initial: list[Array],
    kafka: KafkaSettings,
    topics: ExchangeTopics,
) -> Any:
    """EPOCHS rounds of one local epoch each from the `initial` weights, FedAvg, over the
    exchange topics."""
    model = get_framework(framework).build(*MODELS[framework])
    plan = round_plan(framework, *MODELS[framework], batch_size=BATCH)
    datasets = {name: (key, share) for (name, key), share in zip(KEYS.items(), shares, strict=True)}
    weights = initial
    with federation(kafka, topics, datasets) as (coordinator, workers):
        for index in range(EPOCHS):
            weights = coordinator.run_round(
                index, weights, min_clients=3, timeout_s=300, plan=plan
            ).weights
        coordinator.finish(weights)
    assert [len(worker.rounds_trained) for worker in workers] == [EPOCHS] * 3
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_federated_accuracy_on_non_iid_digits_is_within_two_points_of_centralized(
    framework: str, kafka_settings: KafkaSettings, topics: ExchangeTopics
) -> None:
    shares, test = digits_shares()
    labels = [np.bincount(s.parts.train.arrays()[1].ravel(), minlength=10) for s in shares]  # type: ignore[union-attr]
    assert all(counts[list(g)].sum() > 0.6 * counts.sum() for counts, g in zip(labels, GROUPS,
               strict=True))  # fmt: skip  # non-IID: each worker mostly holds its own digits
    _seed(framework)  # the same initial weights every run, and for both trainings
    initial = get_framework(framework).build(*MODELS[framework]).get_weights()
    central = accuracy(centralized(framework, shares, initial), test)
    fed = accuracy(federated(framework, shares, initial, kafka_settings, topics), test)
    print(f"{framework}: centralized {central:.3f}, federated {fed:.3f} ({EPOCHS} epochs)")
    assert central > 0.85, "the centralized baseline itself must have learned"
    assert abs(central - fed) <= 0.02, (central, fed)
