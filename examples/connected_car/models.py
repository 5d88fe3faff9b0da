"""The autoencoder as model code, the way it is stored on the platform (imports + code that
binds `model`), for TensorFlow/Keras and for PyTorch: 18 -> 12 -> 6 -> 12 -> 18, linear output,
mean squared error against the input itself."""

from __future__ import annotations

FEATURES = 18

TENSORFLOW_IMPORTS = "import keras"
TENSORFLOW_CODE = """\
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((18,)),
    keras.layers.Dense(12, activation="relu"),
    keras.layers.Dense(6, activation="relu"),
    keras.layers.Dense(12, activation="relu"),
    keras.layers.Dense(18),
])
model.compile(optimizer=keras.optimizers.Adam(0.003), loss="mse")
"""

PYTORCH_IMPORTS = "import torch\nfrom torch import nn\nfrom ignite.metrics import Loss"
PYTORCH_CODE = """\
class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(18, 12), nn.ReLU(), nn.Linear(12, 6), nn.ReLU(),
            nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 18),
        )

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.MSELoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.003)

    def metrics(self):
        return {"loss": Loss(self.loss_fn())}


torch.manual_seed(0)
model = AutoEncoder()
"""

CODE = {
    "tensorflow": (TENSORFLOW_IMPORTS, TENSORFLOW_CODE),
    "pytorch": (PYTORCH_IMPORTS, PYTORCH_CODE),
}
