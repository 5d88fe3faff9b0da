"""The autoencoder as platform model code (imports + code that binds `model`), for
TensorFlow/Keras and for PyTorch: 18 -> 12 -> 6 -> 12 -> 18, linear output, trained with target
"input" (the reading is its own target).

The scaler is part of the model: the training fleet's per-field mean and spread are written into
the code, the model standardizes its input and turns its output back into sensor units, and the
loss is the mean squared error in standardized units (so a field with a large spread, such as
engine vibration in mV, does not drown the others). Scaler and model are one artifact: the
inference serves exactly what training saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURES = 18

TENSORFLOW_IMPORTS = "import keras"
TENSORFLOW_CODE = """\
MEAN = {mean}
STD = {std}


class StandardizedMSE(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return keras.ops.mean(keras.ops.square((y_true - y_pred) / keras.ops.array(STD)), axis=-1)


keras.utils.set_random_seed(0)
variance = [s * s for s in STD]
inputs = keras.Input((18,))
hidden = keras.layers.Normalization(mean=MEAN, variance=variance)(inputs)
for units in (12, 6, 12):
    hidden = keras.layers.Dense(units, activation="relu")(hidden)
standardized = keras.layers.Dense(18)(hidden)
outputs = keras.layers.Normalization(mean=MEAN, variance=variance, invert=True)(standardized)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(0.003), loss=StandardizedMSE())
"""

PYTORCH_IMPORTS = "import torch\nfrom torch import nn\nfrom ignite.metrics import Loss"
PYTORCH_CODE = """\
MEAN = {mean}
STD = {std}


class StandardizedMSE(nn.Module):
    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, reconstructed, target):
        return (((reconstructed - target) / self.std) ** 2).mean()


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN))
        self.register_buffer("std", torch.tensor(STD))
        self.layers = nn.Sequential(
            nn.Linear(18, 12), nn.ReLU(), nn.Linear(12, 6), nn.ReLU(),
            nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 18),
        )

    def forward(self, x):
        return self.layers((x - self.mean) / self.std) * self.std + self.mean

    def loss_fn(self):
        return StandardizedMSE(self.std)

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.003)

    def metrics(self):
        return {{"loss": Loss(self.loss_fn())}}


torch.manual_seed(0)
model = AutoEncoder()
"""

CODE = {
    "tensorflow": (TENSORFLOW_IMPORTS, TENSORFLOW_CODE),
    "pytorch": (PYTORCH_IMPORTS, PYTORCH_CODE),
}


def model_code(
    framework: str, mean: np.ndarray[Any, Any], std: np.ndarray[Any, Any]
) -> tuple[str, str]:
    """(imports, code) of the autoencoder with the scaler `mean`/`std` written in."""
    imports, code = CODE[framework]
    as_list = lambda values: repr([round(float(v), 6) for v in values])  # noqa: E731
    return imports, code.format(mean=as_list(mean), std=as_list(std))
