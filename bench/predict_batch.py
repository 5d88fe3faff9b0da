"""`predict_batch` throughput of an 18 -> 64 -> 64 -> 1 MLP at batch 1 and batch 1000: Keras
behind a traced `tf.function`, PyTorch under `inference_mode`, and the PyTorch model exported to
ONNX and served by onnxruntime. No broker is needed; `bootstrap` is ignored."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from kafkaml.frameworks.onnx import OnnxModel

SECONDS_PER_FIGURE = 2.0
BATCHES = (1, 1000)

KERAS = (
    "import keras\nfrom keras import layers\n",
    "model = keras.Sequential([keras.Input((18,)), layers.Dense(64, activation='relu'),\n"
    "    layers.Dense(64, activation='relu'), layers.Dense(1)])\n"
    "model.compile(optimizer='adam', loss='mse')\n",
)
TORCH = (
    "import torch\nfrom torch import nn\nfrom ignite.metrics import Loss\n",
    "class MLP(nn.Sequential):\n"
    "    def loss_fn(self): return nn.MSELoss()\n"
    "    def optimizer(self): return torch.optim.Adam(self.parameters())\n"
    "    def metrics(self): return {'loss': Loss(self.loss_fn())}\n"
    "model = MLP(nn.Linear(18, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))\n",
)


def run(bootstrap: str) -> None:
    del bootstrap  # model-only benchmark
    keras_model = get_framework("tensorflow").build(*KERAS)
    torch_model = get_framework("pytorch").build(*TORCH)
    onnx_model = OnnxModel(torch_model.export_onnx())
    for name, predict in [
        ("keras tf.function", keras_model.predict_batch),
        ("torch inference_mode", torch_model.predict_batch),
        ("onnxruntime (torch export)", onnx_model.predict_batch),
    ]:
        for batch in BATCHES:
            rate = _samples_per_second(predict, batch)
            _report(name, batch, rate)
    # On a shared 2-core machine torch's spinning intra-op threads can cost more than they give.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch in BATCHES:
            rate = _samples_per_second(torch_model.predict_batch, batch)
            _report("torch inference_mode, 1 thread", batch, rate)
    finally:
        torch.set_num_threads(threads)


def _report(name: str, batch: int, rate: float) -> None:
    print(f"predict_batch {name:<31} batch {batch:>4}: {rate:>12,.0f} samples/s", flush=True)


def _samples_per_second(predict: Callable[[Array], object], batch: int) -> float:
    x = np.random.default_rng(0).random((batch, 18), dtype=np.float32)
    for _ in range(20):  # tracing, allocator and thread-pool warm-up
        predict(x)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS_PER_FIGURE:
        for _ in range(50):
            predict(x)
        calls += 50
    return calls * batch / elapsed
