"""Training input: ingest into training batches, and one epoch from Kafka vs from memory.

On one 1,000,000-sample RAW topic (16 float32 features, a uint8 label, 4 partitions) written by
RawSink: samples/s that the native reader and the tensorflow-io reader deliver into the job's
held arrays (model_training.dataset.collect), then one Keras epoch of a small dense classifier
fed from Kafka (read once + the epoch, as the job does) against the same epoch fed from numpy
arrays already in memory. Targets: native >= 5x tfio; Kafka epoch within 1.2x of memory.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import numpy as np
from confluent_kafka import KafkaException

from kafkaml.datasources import RawSink
from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol import ControlMessage
from model_training.dataset import Samples, array_batches, collect, split
from model_training.readers import make_reader

SAMPLES = int(os.environ.get("KAFKAML_BENCH_TRAINING_SAMPLES", "1000000"))
FEATURES = 16
CLASSES = 10
BATCH = int(os.environ.get("KAFKAML_BENCH_TRAINING_BATCH", "1000"))
PARTITIONS = 4
MEMORY = 4 * 2**30
CODE = f"""
model = keras.Sequential([
    keras.Input(shape=({FEATURES},)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense({CLASSES}, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    x, y = _data()
    message = _write(settings, x, y)
    native = _ingest(settings, message, "native")
    tfio = _ingest(settings, message, "tfio")
    print(f"ingest, native reader: {native:,.0f} samples/s ({SAMPLES:,} samples)")
    print(f"ingest, tensorflow-io reader: {tfio:,.0f} samples/s ({SAMPLES:,} samples)")
    print(f"native / tensorflow-io: {native / tfio:.1f}x (target >= 5x)")
    memory_s = min(_epoch_from_memory(x, y) for _ in range(2))
    kafka_s = min(_epoch_from_kafka(settings, message) for _ in range(2))
    print(f"one epoch from memory (numpy arrays, batch {BATCH}): {memory_s:.2f} s")
    print(f"one epoch from Kafka (read once + the same epoch): {kafka_s:.2f} s")
    print(f"Kafka / memory: {kafka_s / memory_s:.2f}x (target <= 1.2x)")


def _data() -> tuple[Array, Array]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, SAMPLES).astype(np.uint8)
    centers = rng.normal(0, 2, (CLASSES, FEATURES))
    return (centers[y] + rng.normal(0, 1, (SAMPLES, FEATURES))).astype(np.float32), y


def _write(settings: KafkaSettings, x: Array, y: Array) -> ControlMessage:
    topic = f"bench-training-{uuid.uuid4().hex[:8]}"
    control = f"bench-training-control-{uuid.uuid4().hex[:8]}"
    ensure_topics(make_admin(settings), [topic], partitions=PARTITIONS)
    sink = _sink(settings, topic, control)
    sink.send_many(x, y.reshape(-1, 1))
    return sink.close()


def _sink(settings: KafkaSettings, topic: str, control: str) -> RawSink:
    """A RawSink on a fresh topic; the broker answers NOT_LEADER for a moment after creation."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return RawSink(
                topic=topic,
                deployment_id=1,
                control_topic=control,
                partition=None,
                kafka_settings=settings,
                progress=False,
                label_reshape="1",
                label_type="uint8",
            )
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _ingest(settings: KafkaSettings, message: ControlMessage, reader: str) -> float:
    read = make_reader(reader, "tensorflow", settings, stall_timeout_s=60)
    start = time.perf_counter()
    samples = _collect(read, message)
    elapsed = time.perf_counter() - start
    if len(samples) != SAMPLES:
        raise RuntimeError(f"{reader} read {len(samples)} samples, not {SAMPLES}")
    return SAMPLES / elapsed


def _collect(read: Callable[..., object], message: ControlMessage) -> Samples:
    batches = read(message.ranges, message.input_format, message.input_config, True)
    return collect(batches, SAMPLES, memory_limit_bytes=MEMORY)  # type: ignore[arg-type]


def _epoch_from_memory(x: Array, y: Array) -> float:
    framework = get_framework("tensorflow")
    model = framework.build("import keras", CODE)
    labels = y.reshape(-1, 1)
    start = time.perf_counter()
    framework.fit(model, array_batches(x, labels, BATCH), fit_kwargs={"epochs": 1})
    return time.perf_counter() - start


def _epoch_from_kafka(settings: KafkaSettings, message: ControlMessage) -> float:
    framework = get_framework("tensorflow")
    model = framework.build("import keras", CODE)
    read = make_reader("native", "tensorflow", settings, stall_timeout_s=60)
    start = time.perf_counter()
    parts = split(_collect(read, message), 0.0, 0.0, seed=1)
    framework.fit(model, parts.train.batches(BATCH), fit_kwargs={"epochs": 1})
    return time.perf_counter() - start
