"""Fixtures of the inference tests: tiny real models, spec files, records in and out of Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import pytest
from confluent_kafka import Message

from kafkaml.frameworks import get_framework, load_artifact
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol.answers import MODEL_VERSION_HEADER
from model_inference.clients import build_service
from model_inference.service import InferenceService
from model_inference.settings import InferenceSettings
from model_inference.spec import FileSpecSource

FEATURES = 18
RAW_CONFIG = {"data_type": "float32", "data_reshape": str(FEATURES)}

if TYPE_CHECKING:
    from kafkaml.frameworks.pytorch import PyTorchFramework

KERAS_IMPORTS = "import keras"
KERAS_CODE = """\
model = keras.Sequential([
    keras.Input((18,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(3, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
"""
TORCH_IMPORTS = "import torch\nfrom torch import nn\nfrom ignite.metrics import Loss"
TORCH_CODE = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(18, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=1)
        )

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.CrossEntropyLoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters())

    def metrics(self):
        return {"loss": Loss(self.loss_fn())}


model = Net()
"""
# An early-exit chain: the edge tier answers confident rows, forwards an 8-float tensor otherwise.
EDGE_CODE = """\
class Edge(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(18, 8), nn.ReLU())
        self.exit = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))

    def forward(self, x):
        hidden = self.body(x)
        return hidden, self.exit(hidden)


model = Edge()
"""
CLOUD_CODE = """\
model = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))
input_shape = (8,)
"""


@dataclass(frozen=True)
class TinyModel:
    """A real model of one framework, saved as an artifact, with its code."""

    framework: str
    artifact_format: str
    imports: str
    code: str
    artifact: bytes

    def predictor(self) -> Any:
        """The same artifact loaded in-process, to compute the expected predictions."""
        return load_artifact(
            self.framework, self.artifact, self.artifact_format, imports=self.imports,
            code=self.code,
        )  # fmt: skip


def build_tiny_model(framework: str, imports: str, code: str) -> TinyModel:
    """Run the code through the frameworks and save the fresh (randomly initialised) model."""
    if framework == "tensorflow":
        model = get_framework(framework).build(imports, code)
    else:
        pytorch = cast("PyTorchFramework", get_framework(framework))
        model = pytorch.build(imports, code, require_training=False)
    fmt = get_framework(framework).artifact_format
    return TinyModel(framework, fmt, imports, code, model.save())


@pytest.fixture(scope="session")
def torch_model() -> TinyModel:
    return build_tiny_model("pytorch", TORCH_IMPORTS, TORCH_CODE)


@pytest.fixture(scope="session")
def other_torch_model() -> TinyModel:
    """Same architecture, other weights: the model a hot swap brings in."""
    return build_tiny_model("pytorch", TORCH_IMPORTS, TORCH_CODE)


@pytest.fixture(scope="session")
def keras_model() -> TinyModel:
    return build_tiny_model("tensorflow", KERAS_IMPORTS, KERAS_CODE)


@pytest.fixture(scope="session")
def edge_and_cloud_models() -> tuple[TinyModel, TinyModel]:
    return (
        build_tiny_model("pytorch", TORCH_IMPORTS, EDGE_CODE),
        build_tiny_model("pytorch", TORCH_IMPORTS, CLOUD_CODE),
    )


@dataclass
class SpecFile:
    """An inference spec on disk (spec-file mode) that a test can rewrite to swap the model."""

    path: Path
    value: dict[str, Any] = field(default_factory=dict)

    def write(self, model: TinyModel, version: str) -> None:
        """Write the artifact, then atomically replace the spec naming it."""
        artifact = self.path.parent / f"model-{version}.{model.artifact_format}"
        artifact.write_bytes(model.artifact)
        self.value.update(
            model_version=version,
            framework=model.framework,
            artifact_format=model.artifact_format,
            model={"imports": model.imports, "code": model.code},
            artifact_path=artifact.name,
        )
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.value))
        scratch.replace(self.path)


def spec_file(
    directory: Path,
    model: TinyModel,
    *,
    input_topic: str,
    output_topic: str,
    inference_id: int = 1,
    version: str = "1",
    input_config: dict[str, Any] | None = None,
    **fields: Any,
) -> SpecFile:
    """A spec file for an inference of `model` from `input_topic` to `output_topic`."""
    spec = SpecFile(
        directory / f"inference-{inference_id}.json",
        {
            "inference_id": inference_id,
            "input_format": "RAW",
            "input_config": RAW_CONFIG if input_config is None else input_config,
            "input_topic": input_topic,
            "output_topic": output_topic,
            **fields,
        },
    )
    spec.write(model, version)
    return spec


def unique_inference_id() -> int:
    """A fresh inference id per test, so group and transactional ids never meet old ones."""
    return int(time.time_ns() // 1000 % 2_000_000_000)


class Stream(NamedTuple):
    """An inference's fresh input and output topics, and its spec file."""

    source: str
    target: str
    spec: SpecFile


@pytest.fixture
def new_stream(new_topic: Callable[..., str], tmp_path: Path) -> Callable[..., Stream]:
    """Factory of inferences of a model between two fresh topics of `partitions` partitions,
    each with a fresh inference id and a folder of its own for its spec and artifacts:
    `source, target, spec = new_stream(torch_model, partitions=4, delivery="at-least-once")`
    (other keywords are the spec's fields, as `spec_file` takes them)."""
    count = 0

    def create(model: TinyModel, *, partitions: int = 1, **fields: Any) -> Stream:
        nonlocal count
        count += 1
        source, target = new_topic(partitions=partitions), new_topic(partitions=partitions)
        directory = tmp_path / f"inference-{count}"
        directory.mkdir()
        fields.setdefault("inference_id", unique_inference_id())
        spec = spec_file(directory, model, input_topic=source, output_topic=target, **fields)
        return Stream(source, target, spec)

    return create


def start_service(
    spec: SpecFile, kafka_settings: KafkaSettings, **settings: Any
) -> InferenceService:
    """A subscribed replica of the spec file's inference, built as `python -m` builds it."""
    defaults: dict[str, Any] = {
        "spec_file": spec.path, "replica": "0", "session_timeout_ms": 6000, "max_wait_ms": 50,
        "spec_poll_s": 0.05,
    }  # fmt: skip
    _, service = build_service(
        InferenceSettings(**{**defaults, **settings}), kafka_settings, FileSpecSource(spec.path)
    )
    service.subscribe(spec.value["input_topic"])
    return service


def samples(count: int, seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(count, FEATURES)).astype(np.float32)


def produce_samples(
    kafka_settings: KafkaSettings,
    topic: str,
    x: np.ndarray[Any, Any],
    *,
    first_key: int = 0,
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> None:
    """One RAW record per row, keyed by its running number as text."""
    produce_values(
        kafka_settings, topic, (row.tobytes() for row in x), first_key=first_key, headers=headers
    )


def produce_values(
    kafka_settings: KafkaSettings,
    topic: str,
    values: Iterable[bytes],
    *,
    first_key: int = 0,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    partitions: int | None = None,
) -> None:
    """One record per value, keyed by its running number as text; on partition `number %
    partitions` when `partitions` is given, else where the key's hash puts it."""
    producer = make_producer(kafka_settings)
    for number, value in enumerate(values, start=first_key):
        partition = -1 if partitions is None else number % partitions  # -1: the partitioner's
        producer.produce(topic, value, str(number).encode(), partition, headers=headers)
        if number % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def run_until(
    services: list[InferenceService], done: Callable[[], bool], timeout_s: float = 60
) -> None:
    """Call process_batch on each service in turn until `done()` or the deadline (fails)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the services did not finish in time"
        for service in services:
            service.process_batch()


def version_of(record: Message) -> str:
    headers = cast("list[tuple[str, bytes]]", record.headers() or [])
    return dict(headers)[MODEL_VERSION_HEADER].decode()


def values_of(record: Message) -> list[float]:
    return json.loads(cast(bytes, record.value()))["values"]  # type: ignore[no-any-return]


@pytest.fixture
def closing() -> Iterator[list[InferenceService]]:
    """Services to close at the end of the test (leaving their groups)."""
    services: list[InferenceService] = []
    yield services
    for service in services:
        service.close()
