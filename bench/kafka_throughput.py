"""Produce and consume throughput of 1,000,000 x 100-byte records through kafkaml's factories."""

from __future__ import annotations

import os
import time
import uuid

from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer

RECORDS = int(os.environ.get("KAFKAML_BENCH_RECORDS", "1000000"))
PARTITIONS = 4


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    topic = f"bench-throughput-{uuid.uuid4().hex[:8]}"
    ensure_topics(make_admin(settings), [topic], partitions=PARTITIONS)
    produce_s = _produce(settings, topic)
    consume_s = _consume(settings, topic)
    print(
        f"produce: {RECORDS / produce_s:,.0f} records/s ({RECORDS:,} x 100 B in {produce_s:.2f} s)"
    )
    print(
        f"consume: {RECORDS / consume_s:,.0f} records/s ({RECORDS:,} x 100 B in {consume_s:.2f} s)"
    )
    make_admin(settings).delete_topics([topic])


def _produce(settings: KafkaSettings, topic: str) -> float:
    producer = make_producer(settings)
    value = b"v" * 100
    start = time.perf_counter()
    for i in range(RECORDS):
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 50_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining:
        raise RuntimeError(f"{remaining} records were not delivered")
    return elapsed


def _consume(settings: KafkaSettings, topic: str) -> float:
    consumer = make_consumer(settings)
    consumer.subscribe([topic])
    seen = 0
    start = None
    while seen < RECORDS:
        batch = consumer.consume(num_messages=10_000, timeout=10)
        if not batch:
            raise RuntimeError(f"consumer stalled after {seen:,} records")
        if start is None:
            start = time.perf_counter()
        seen += len(batch)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return elapsed
