"""Real model code, written the way Kafka-ML users write it, shared by the framework and
executor tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kafkaml.frameworks import BatchSource
from kafkaml.frameworks.base import Array

TF_IMPORTS = "import keras\nfrom keras import layers\n"

TF_DENSE = """\
model = keras.Sequential([
    keras.Input(shape=(18,)),
    layers.Dense(64, activation="relu"),
    layers.Dense(64, activation="relu"),
    layers.Dense(3, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
TF_DENSE_PARAMS = 18 * 64 + 64 + 64 * 64 + 64 + 64 * 3 + 3

TF_CONV = """\
model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(8, 3, activation="relu"),
    layers.MaxPooling2D(),
    layers.Flatten(),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
TF_CONV_PARAMS = (3 * 3 * 1 * 8 + 8) + (13 * 13 * 8 * 10 + 10)

# An early-exit chain in Kafka-ML's style: the last line is the model, not bound to `model`.
TF_EDGE = """\
inputs = keras.Input(shape=(18,), name="edge_input")
hidden = layers.Dense(16, activation="relu")(inputs)
to_fog = layers.Dense(8, activation="relu", name="to_fog")(hidden)
exit_edge = layers.Dense(3, activation="softmax", name="edge_exit")(to_fog)
keras.Model(inputs=inputs, outputs=[to_fog, exit_edge], name="edge")
"""
TF_FOG = """\
inputs = keras.Input(shape=(8,), name="fog_input")
to_cloud = layers.Dense(8, activation="relu", name="to_cloud")(inputs)
exit_fog = layers.Dense(3, activation="softmax", name="fog_exit")(to_cloud)
keras.Model(inputs=inputs, outputs=[to_cloud, exit_fog], name="fog")
"""
TF_CLOUD = """\
inputs = keras.Input(shape=(8,), name="cloud_input")
hidden = layers.Dense(8, activation="relu")(inputs)
model = keras.Model(inputs, layers.Dense(3, activation="softmax")(hidden), name="cloud")
"""

PT_IMPORTS = """\
import torch
from torch import nn
from ignite.metrics import Accuracy, Loss
"""

PT_DENSE = """\
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(18, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)
        )

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def metrics(self):
        return {"accuracy": Accuracy(), "loss": Loss(self.loss_fn())}

model = Classifier()
"""
PT_DENSE_PARAMS = TF_DENSE_PARAMS

PT_CONV = """\
input_shape = (1, 28, 28)

class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8 * 13 * 13, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def metrics(self):
        return {"loss": Loss(self.loss_fn())}

model = ConvNet()
"""
PT_CONV_PARAMS = TF_CONV_PARAMS

# A 3-tier PyTorch chain: lower tiers return (to_upper, prediction).
_PT_TIER = """\
class Tier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear({inputs}, 8)
        self.exit = nn.Linear(8, 3)

    def forward(self, x):
        hidden = torch.relu(self.body(x))
        return {returns}

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def metrics(self):
        return {{"accuracy": Accuracy(), "loss": Loss(self.loss_fn())}}

model = Tier()
"""
PT_EDGE = _PT_TIER.format(inputs=18, returns="hidden, self.exit(hidden)")
PT_FOG = _PT_TIER.format(inputs=8, returns="hidden, self.exit(hidden)")
PT_CLOUD = _PT_TIER.format(inputs=8, returns="self.exit(hidden)")


@dataclass(frozen=True)
class DenseData:
    """Samples for the dense models (18 features, 3 classes) and the batches a job feeds."""

    x: Array
    y: Array

    @classmethod
    def random(cls, seed: int, count: int = 40) -> DenseData:
        rng = np.random.default_rng(seed)
        return cls(rng.random((count, 18), dtype=np.float32), rng.integers(0, 3, count))

    def batches(self, size: int = 10) -> BatchSource:
        """Batches of `size` samples, in order, from the start again at each call."""
        x, y = self.x, self.y
        return lambda: ((x[i : i + size], y[i : i + size]) for i in range(0, len(x), size))
