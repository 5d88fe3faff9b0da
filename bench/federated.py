"""Federated rounds: seconds per round for a ~100k-parameter model with 3 workers, and the
coordinator's share of it.

Everything runs in this process on the real broker: the coordinator in the main thread, three
workers (PyTorch, 2,000 non-IID samples each, 1 local epoch, batch 64) in threads, exchanging
signed, chunked weights over fresh exchange topics. The coordinator's share is its thread's CPU
time (publishing, verifying, decoding, averaging) over the round's wall time; the rest is the
workers' training and the exchange.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np

from kafkaml.frameworks import get_framework
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from model_training.dataset import Samples, split
from model_training.federated.coordinator import round_plan
from model_training.federated.exchange import exchange_topics
from model_training.federated.simulation import federation
from model_training.federated.worker import LocalDataset

ROUNDS = int(os.environ.get("KAFKAML_BENCH_FEDERATED_ROUNDS", "5"))
SAMPLES = 2000
FEATURES = 64
IMPORTS = "import torch\nfrom torch import nn\nfrom ignite.metrics import Accuracy, Loss"
CODE = f"""
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear({FEATURES}, 512), nn.ReLU(), nn.Linear(512, 128),
                                    nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.001)

    def metrics(self):
        return {{"loss": Loss(self.loss_fn()), "accuracy": Accuracy()}}

model = Net()
"""
KEYS = {f"worker-{i}": f"key-{i}".encode() for i in range(3)}


def _dataset(index: int) -> LocalDataset:
    rng = np.random.default_rng(index)
    y = rng.integers(index * 3, index * 3 + 4, size=SAMPLES).astype(np.int64)  # non-IID labels
    x = (rng.normal(size=(SAMPLES, FEATURES)) + y[:, None] * 0.1).astype(np.float32)
    parts = split(Samples(x, y.reshape(-1, 1)), 0.1, 0.0, index)
    return LocalDataset(parts, len(parts.train), {})


def run(bootstrap: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topics = exchange_topics(random.randrange(10**6, 2**31), prefix="bench-federated")
    admin = make_admin(kafka)
    ensure_topics(admin, [topics.global_weights, topics.updates])
    model = get_framework("pytorch").build(IMPORTS, CODE)
    params = model.summary().params
    plan = round_plan("pytorch", IMPORTS, CODE, batch_size=64)
    datasets = {name: (key, _dataset(i)) for i, (name, key) in enumerate(KEYS.items())}
    weights = model.get_weights()
    walls, shares = [], []
    with federation(kafka, topics, datasets) as (coordinator, _):
        for index in range(ROUNDS + 1):  # round 0 builds the workers' models: a warm-up
            wall, cpu = time.perf_counter(), time.thread_time()
            weights = coordinator.run_round(
                index, weights, min_clients=3, timeout_s=600, plan=plan
            ).weights
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            if index:
                walls.append(wall)
                shares.append(cpu / wall)
        coordinator.finish(weights)
    for future in admin.delete_topics([topics.global_weights, topics.updates]).values():
        future.result(timeout=30)
    print(
        f"federated: {params} parameters, 3 workers x {SAMPLES} samples, {ROUNDS} rounds: "
        f"{np.median(walls):.2f} s per round (median; min {min(walls):.2f}, max "
        f"{max(walls):.2f}); coordinator CPU {100 * np.median(shares):.1f} % of the round"
    )
