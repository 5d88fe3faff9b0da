"""Training input: ingest into training batches, and one epoch from Kafka vs from memory.

On one 1,000,000-sample RAW topic (16 float32 features, a uint8 label, 4 partitions) written by
RawSink: samples/s that the native reader and the tensorflow-io reader deliver into the job's
held arrays (model_training.dataset.collect), then one Keras epoch of a small dense classifier
fed from Kafka (read once while the first epoch trains, as the job does) against the same
epoch fed from numpy arrays already in memory, at batch 1000 and 128.
Targets: native >= 5x tfio; the Kafka epoch within 1.2x of the memory epoch.
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
from confluent_kafka import KafkaException

from kafkaml.datasources import RawSink
from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol import ControlMessage
from model_training.dataset import TRAIN, Samples, StreamedSplit, array_batches, collect
from model_training.reader_process import ChildReader
from model_training.readers import RangeReader, make_reader

SAMPLES = int(os.environ.get("KAFKAML_BENCH_TRAINING_SAMPLES", "1000000"))
FEATURES = 16
CLASSES = 10
# A large batch makes the epoch short, so reading weighs most; 128 is a common training batch.
BATCHES = (1000, 128)
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
    for batch, repeats in zip(BATCHES, (2, 1), strict=True):
        memory_s = min(_epoch_from_memory(x, y, batch) for _ in range(repeats))
        kafka_s = min(_epoch_from_kafka(settings, message, batch) for _ in range(repeats))
        print(f"batch {batch}: one epoch from memory (numpy arrays): {memory_s:.2f} s")
        print(f"batch {batch}: one epoch from Kafka (read once + the same epoch): {kafka_s:.2f} s")
        print(f"batch {batch}: Kafka / memory: {kafka_s / memory_s:.2f}x (target <= 1.2x)")


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
    read = _ready_reader(reader, settings)
    start = time.perf_counter()
    samples = _collect(read, message)
    elapsed = time.perf_counter() - start
    if len(samples) != SAMPLES:
        raise RuntimeError(f"{reader} read {len(samples)} samples, not {SAMPLES}")
    return SAMPLES / elapsed


def _ready_reader(name: str, settings: KafkaSettings) -> RangeReader:
    """A reader as the job holds it when the data is announced: made before the job waited for
    the control message, so the native reader's process has started."""
    read = make_reader(name, "tensorflow", settings, stall_timeout_s=60)
    if isinstance(read, ChildReader):
        read.wait_ready()
    return read


def _collect(read: RangeReader, message: ControlMessage) -> Samples:
    batches = read(message.ranges, message.input_format, message.input_config, True)
    return collect(batches, SAMPLES, memory_limit_bytes=MEMORY)


def _epoch_from_memory(x: Array, y: Array, batch: int) -> float:
    framework = get_framework("tensorflow")
    model = framework.build("import keras", CODE)
    labels = y.reshape(-1, 1)
    start = time.perf_counter()
    framework.fit(model, array_batches(x, labels, batch), fit_kwargs={"epochs": 1})
    return time.perf_counter() - start


def _epoch_from_kafka(settings: KafkaSettings, message: ControlMessage, batch: int) -> float:
    read = _ready_reader("native", settings)
    framework = get_framework("tensorflow")
    model = framework.build("import keras", CODE)
    start = time.perf_counter()
    batches = read(message.ranges, message.input_format, message.input_config, True)
    # What the job does: the first epoch trains while a reader thread fills the held arrays.
    stream = StreamedSplit(batches, SAMPLES, 0.0, 0.0, 1, memory_limit_bytes=MEMORY)
    framework.fit(model, stream.batches(TRAIN, batch), fit_kwargs={"epochs": 1})
    stream.raise_error()
    return time.perf_counter() - start
