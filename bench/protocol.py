"""Sink and read+decode throughput of the wire protocol on the broker.

sink: RawSink.send_many of 1,000,000 float32 x 18 samples with float32 labels, from the sink's
creation to its control message delivered. read+decode: read_ranges over the announced ranges
(assign, consume in batches of 10,000, decode_batch). Then the same, smaller, for AVRO and JSON.
Sample counts: KAFKAML_BENCH_SAMPLES (RAW, default 1,000,000) and KAFKAML_BENCH_SAMPLES_SLOW
(AVRO and JSON, default 100,000). "per CPU-second" divides by the process's CPU time (all its
threads, librdkafka's included): on a machine shared with other work it shows what the code
costs when the wall-clock figure is inflated by waiting for a core.
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
import numpy.typing as npt

from kafkaml.datasources import AvroSink, JsonSink, RawSink
from kafkaml.datasources.sink import KafkaMLSink
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol import ControlMessage, decode_batch, read_ranges

SAMPLES = int(os.environ.get("KAFKAML_BENCH_SAMPLES", "1000000"))
SLOW_SAMPLES = int(os.environ.get("KAFKAML_BENCH_SAMPLES_SLOW", "100000"))
FEATURES = 18
BATCH = 10_000


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    _decode_only()
    for sink_class, count in (
        (RawSink, SAMPLES),
        (AvroSink, SLOW_SAMPLES),
        (JsonSink, SLOW_SAMPLES),
    ):
        _measure(settings, sink_class, count)


def _decode_only() -> None:
    """decode_batch alone on records already in memory: what decoding adds to a read."""
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, FEATURES), dtype=np.float32)
    y = rng.random(BATCH, dtype=np.float32)
    values = [row.tobytes() for row in x]
    keys = [label.tobytes() for label in y]
    config = {"data_type": "float32", "data_reshape": str(FEATURES), "label_type": "float32",
              "label_reshape": ""}  # fmt: skip
    rounds = 200
    start = time.perf_counter()
    for _ in range(rounds):
        decode_batch("RAW", config, values, keys)
    elapsed = time.perf_counter() - start
    print(f"RAW decode_batch alone: {rounds * BATCH / elapsed:,.0f} samples/s "
          f"(batches of {BATCH:,} x {FEATURES} float32 + float32 label, in memory)")  # fmt: skip


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
        message, (sink_s, sink_cpu) = _sink(settings, sink_class, topic, control, x, y)
        read, (read_s, read_cpu) = _read(settings, message)
        if read != count:
            raise RuntimeError(f"read {read:,} samples of the {count:,} announced")
        name = message.input_format.value
        print(
            f"{name} sink: {count / sink_s:,.0f} samples/s ({count:,} x {FEATURES} float32 "
            f"+ float32 label in {sink_s:.2f} s; {count / sink_cpu:,.0f} per CPU-second)"
        )
        print(
            f"{name} read+decode: {count / read_s:,.0f} samples/s ({count:,} in {read_s:.2f} s, "
            f"batches of {BATCH:,}; {count / read_cpu:,.0f} per CPU-second)"
        )
    finally:
        for future in admin.delete_topics([topic, control]).values():
            future.result(timeout=30)


def _sink(
    settings: KafkaSettings,
    sink_class: type[KafkaMLSink],
    topic: str,
    control: str,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
) -> tuple[ControlMessage, tuple[float, float]]:
    start, cpu = time.perf_counter(), time.process_time()
    sink = sink_class(
        None, topic, 1, control_topic=control, kafka_settings=settings, progress=False
    )
    sink.send_many(x, y)
    message = sink.close()
    return message, (time.perf_counter() - start, time.process_time() - cpu)


def _read(settings: KafkaSettings, message: ControlMessage) -> tuple[int, tuple[float, float]]:
    start, cpu = time.perf_counter(), time.process_time()
    read = 0
    for batch, _ in read_ranges(
        settings, message.ranges, message.input_format, message.input_config, BATCH
    ):
        read += len(batch)
    return read, (time.perf_counter() - start, time.process_time() - cpu)
