"""Sink and read+decode throughput of the wire protocol on the broker.

sink: RawSink.send_many of 1,000,000 float32 x 18 samples with float32 labels, from the sink's
creation to its control message delivered. read+decode: read_ranges over the announced ranges
(assign, consume in batches of 10,000, decode_batch). Then the same, smaller, for AVRO and JSON.
Sample counts: KAFKAML_BENCH_SAMPLES (RAW, default 1,000,000) and KAFKAML_BENCH_SAMPLES_SLOW
(AVRO and JSON, default 100,000).
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np

from kafkaml.datasources import AvroSink, JsonSink, RawSink
from kafkaml.datasources.sink import KafkaMLSink
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol import ControlMessage, read_ranges

SAMPLES = int(os.environ.get("KAFKAML_BENCH_SAMPLES", "1000000"))
SLOW_SAMPLES = int(os.environ.get("KAFKAML_BENCH_SAMPLES_SLOW", "100000"))
FEATURES = 18
BATCH = 10_000


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    for sink_class, count in (
        (RawSink, SAMPLES),
        (AvroSink, SLOW_SAMPLES),
        (JsonSink, SLOW_SAMPLES),
    ):
        _measure(settings, sink_class, count)


def _measure(settings: KafkaSettings, sink_class: type[KafkaMLSink], count: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((count, FEATURES), dtype=np.float32)
    y = rng.random(count, dtype=np.float32)
    topic, control = (
        f"bench-protocol-{uuid.uuid4().hex[:8]}",
        f"bench-control-{uuid.uuid4().hex[:8]}",
    )
    admin = make_admin(settings)
    ensure_topics(admin, [topic, control])
    try:
        message, sink_s = _sink(settings, sink_class, topic, control, x, y)
        read, read_s = _read(settings, message)
        if read != count:
            raise RuntimeError(f"read {read:,} samples of the {count:,} announced")
        name = message.input_format.value
        print(
            f"{name} sink: {count / sink_s:,.0f} samples/s ({count:,} x {FEATURES} float32 "
            f"+ float32 label in {sink_s:.2f} s)"
        )
        print(
            f"{name} read+decode: {count / read_s:,.0f} samples/s ({count:,} in {read_s:.2f} s, "
            f"batches of {BATCH:,})"
        )
    finally:
        admin.delete_topics([topic, control])


def _sink(
    settings: KafkaSettings,
    sink_class: type[KafkaMLSink],
    topic: str,
    control: str,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[ControlMessage, float]:
    start = time.perf_counter()
    sink = sink_class(
        None, topic, 1, control_topic=control, kafka_settings=settings, progress=False
    )  # type: ignore[call-arg]
    sink.send_many(x, y)
    message = sink.close()
    return message, time.perf_counter() - start


def _read(settings: KafkaSettings, message: ControlMessage) -> tuple[int, float]:
    start = time.perf_counter()
    read = 0
    for batch, _ in read_ranges(
        settings, message.ranges, message.input_format, message.input_config, BATCH
    ):
        read += len(batch)
    return read, time.perf_counter() - start
