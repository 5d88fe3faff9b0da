"""What the job tests share: tiny models, separable data on the real broker, and the job run as
a real `python -m model_training` process in local mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import ControlMessage, InputFormat, TopicRange, format_ranges

ROOT = Path(__file__).resolve().parents[2]
FEATURES = 8
CLASSES = 3
RAW_CONFIG = {
    "data_type": "float32",
    "label_type": "uint8",
    "data_reshape": str(FEATURES),
    "label_reshape": "1",
}

TF_IMPORTS = "import keras"
TF_CODE = f"""
model = keras.Sequential([
    keras.Input(shape=({FEATURES},)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense({CLASSES}, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
"""
TORCH_IMPORTS = "import torch\nfrom torch import nn\nfrom ignite.metrics import Accuracy, Loss"
TORCH_CODE = f"""
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear({FEATURES}, 16), nn.ReLU(), nn.Linear(16, {CLASSES}))

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def metrics(self):
        return {{"loss": Loss(self.loss_fn()), "accuracy": Accuracy()}}

model = Net()
"""
MODELS = {"tensorflow": (TF_IMPORTS, TF_CODE), "pytorch": (TORCH_IMPORTS, TORCH_CODE)}


def tier_code(index: int, tiers: int) -> str:
    """Keras code of tier `index` of an early-exit chain (lower tiers output [to_upper, exit])."""
    width = FEATURES if index == 0 else 12
    if index == tiers - 1:
        return f"""
inputs = keras.Input(shape=({width},))
outputs = keras.layers.Dense({CLASSES}, activation="softmax")(
    keras.layers.Dense(16, activation="relu")(inputs))
model = keras.Model(inputs, outputs, name="tier{index}")
"""
    return f"""
inputs = keras.Input(shape=({width},))
hidden = keras.layers.Dense(12, activation="relu")(inputs)
exit_ = keras.layers.Dense({CLASSES}, activation="softmax")(hidden)
model = keras.Model(inputs, [hidden, exit_], name="tier{index}")
"""


def torch_tier_code(index: int, tiers: int) -> str:
    """PyTorch code of tier `index` of an early-exit chain (lower tiers return (to_upper, exit))."""
    width = FEATURES if index == 0 else 12
    lower = index < tiers - 1
    head = f"nn.Linear(12, {CLASSES})" if lower else f"nn.Linear(16, {CLASSES})"
    body = "nn.Linear({w}, 12), nn.ReLU()" if lower else "nn.Linear({w}, 16), nn.ReLU()"
    forward = (
        "h = self.body(x)\n        return h, self.head(h)"
        if lower
        else ("return self.head(self.body(x))")
    )
    return f"""
class Tier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential({body.format(w=width)})
        self.head = {head}

    def forward(self, x):
        {forward}

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def metrics(self):
        return {{"loss": Loss(self.loss_fn()), "accuracy": Accuracy()}}

model = Tier()
"""


def blobs(count: int, seed: int = 0) -> tuple[Array, Array]:
    """`count` samples of CLASSES well-separated Gaussian blobs (float32 X, uint8 labels)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(42).normal(0, 3, size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, size=count).astype(np.uint8)
    x = (centers[y] + rng.normal(0, 1, size=(count, FEATURES))).astype(np.float32)
    return x, y


def produce_samples(
    settings: KafkaSettings, topic: str, x: Array, y: Array | None, partitions: int = 1
) -> list[TopicRange]:
    """Produce one RAW record per sample (round-robin over partitions); the ranges written."""
    producer = make_producer(settings)
    offsets: dict[int, list[int]] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        offsets.setdefault(message.partition(), []).append(message.offset())

    for index in range(len(x)):
        key = b"\x00" if y is None else y[index].tobytes()
        producer.produce(
            topic, x[index].tobytes(), key, partition=index % partitions, on_delivery=delivered
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    return [
        TopicRange(topic, partition, min(found), max(found) + 1)
        for partition, found in sorted(offsets.items())
    ]


def announce(
    settings: KafkaSettings,
    control_topic: str,
    deployment_id: int,
    topic: str,
    *,
    validation_rate: float = 0.1,
    test_rate: float = 0.2,
    total: int | None = None,
    incremental: bool = False,
    unsupervised_topic: str | None = None,
    input_config: dict[str, Any] | None = None,
) -> None:
    """Publish a control message for `deployment_id` on `control_topic`."""
    message = ControlMessage(
        deployment_id=deployment_id,
        topic=topic,
        input_format=InputFormat.RAW,
        input_config=RAW_CONFIG if input_config is None else input_config,
        validation_rate=validation_rate,
        test_rate=test_rate,
        total_msg=total,
        incremental=incremental,
        unsupervised_topic=unsupervised_topic,
    )
    key, value = message.to_record()
    producer = make_producer(settings)
    producer.produce(control_topic, value, key)
    assert producer.flush(30) == 0


def ranges_text(ranges: list[TopicRange]) -> str:
    return format_ranges(ranges)


def spec_document(
    framework: str,
    control_topic: str,
    deployment_id: int,
    *,
    result_id: int = 1,
    mode: str = "classic",
    created_at: datetime | None = None,
    imports: str | None = None,
    code: str | None = None,
    **training: Any,
) -> dict[str, Any]:
    """A spec document as the job API serves it."""
    default_imports, default_code = MODELS[framework]
    return {
        "result_id": result_id,
        "deployment_id": deployment_id,
        "deployment_created_at": (created_at or datetime.now(UTC)).isoformat(),
        "framework": framework,
        "model": {
            "name": f"model-{result_id}",
            "imports": default_imports if imports is None else imports,
            "code": default_code if code is None else code,
        },
        "training": {
            "mode": mode,
            "batch_size": 64,
            "fit_kwargs": {"epochs": 3},
            "eval_kwargs": {},
            "confusion_matrix": True,
            **training,
        },
        "control_topic": control_topic,
    }


@dataclass
class JobProcess:
    """A training job running as `python -m model_training` in local mode."""

    process: subprocess.Popen[bytes]
    output_dir: Path

    def result(self, result_id: int = 1) -> Path:
        return self.output_dir / f"result-{result_id}"

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self) -> str:
        return (self.output_dir / "job.log").read_text()

    def status(self, result_id: int = 1) -> list[str]:
        return (self.result(result_id) / "status").read_text().splitlines()

    def epochs(self, result_id: int = 1) -> list[dict[str, Any]]:
        path = self.result(result_id) / "epochs.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def metrics(self, result_id: int = 1) -> dict[str, Any]:
        metrics: dict[str, Any] = json.loads((self.result(result_id) / "metrics.json").read_text())
        return metrics


def start_job(
    tmp_path: Path,
    settings: KafkaSettings,
    documents: dict[str, Any] | list[dict[str, Any]],
    **env: str,
) -> JobProcess:
    """Start the job on `documents` (a list for a chain) with local-mode output in tmp_path."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(documents))
    output = tmp_path / "out"
    output.mkdir()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKAML_")},
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "KAFKAML_TRAINING_SPEC_FILE": str(spec_file),
        "KAFKAML_TRAINING_OUTPUT_DIR": str(output),
        "KAFKAML_TRAINING_SEED": "7",
        "KAFKAML_TRAINING_CONTROL_TIMEOUT_S": "120",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        **env,
    }
    log = (output / "job.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "model_training"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return JobProcess(process, output)
