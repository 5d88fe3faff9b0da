"""read_ranges on the real broker: exact ranges, order, located decode errors, missing ranges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import DecodeError, RangeReadError, TopicRange, read_ranges

CONFIG = {"data_type": "int32", "data_reshape": "2", "label_type": "uint8", "label_reshape": ""}


def _write(settings: KafkaSettings, topic: str, partition: int, samples: range) -> None:
    """Kafka-ML-style RAW records: value = sample bytes, key = label bytes."""
    producer = make_producer(settings)
    for i in samples:
        value = np.array([i, -i], dtype=np.int32).tobytes()
        producer.produce(topic, value, bytes([i % 256]), partition)
    assert producer.flush(30) == 0


def _read_all(settings: KafkaSettings, ranges: list[TopicRange], batch_size: int) -> Any:
    batches = [x for x, _ in read_ranges(settings, ranges, "RAW", CONFIG, batch_size)]
    return np.concatenate(batches)[:, 0] if batches else np.empty(0)


def test_reading_stops_exactly_at_each_ranges_end_in_the_order_given(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2)
    _write(kafka_settings, topic, 0, range(0, 50))
    _write(kafka_settings, topic, 1, range(100, 130))
    ranges = [TopicRange(topic, 1, 5, 25), TopicRange(topic, 0, 10, 11), TopicRange(topic, 0, 0, 0)]
    assert _read_all(kafka_settings, ranges, batch_size=7).tolist() == [*range(105, 125), 10]


def test_batches_hold_at_most_batch_size_samples_with_their_labels(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    _write(kafka_settings, topic, 0, range(23))
    batches = list(read_ranges(kafka_settings, [TopicRange(topic, 0, 0, 23)], "RAW", CONFIG, 10))
    assert [len(x) for x, _ in batches] == [10, 10, 3]
    labels = np.concatenate([y for _, y in batches if y is not None])
    assert labels.tolist() == list(range(23))


def test_an_unlabeled_read_returns_no_labels(kafka_settings: KafkaSettings, topic: str) -> None:
    _write(kafka_settings, topic, 0, range(3))
    ((x, y),) = read_ranges(kafka_settings, [TopicRange(topic, 0, 0, 3)], "RAW", CONFIG,
                            labeled=False)  # fmt: skip
    assert y is None and x.shape == (3, 2)


def test_a_bad_record_is_reported_at_its_topic_partition_and_offset(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    _write(kafka_settings, topic, 0, range(5))
    producer = make_producer(kafka_settings)
    producer.produce(topic, b"\x01\x02\x03", b"\x00", 0)  # 3 bytes, not 2 x int32
    assert producer.flush(30) == 0
    _write(kafka_settings, topic, 0, range(5))
    with pytest.raises(DecodeError) as caught:
        list(read_ranges(kafka_settings, [TopicRange(topic, 0, 0, 11)], "RAW", CONFIG))
    error = caught.value
    assert (error.topic, error.partition, error.offset) == (topic, 0, 5)
    assert "has 3 bytes" in str(error) and f"topic {topic}" in str(error)


def test_a_range_beyond_what_the_partition_holds_raises_before_waiting(
    kafka_settings: KafkaSettings, topic: str
) -> None:
    _write(kafka_settings, topic, 0, range(3))
    with pytest.raises(RangeReadError, match="holds records only up to 3"):
        list(read_ranges(kafka_settings, [TopicRange(topic, 0, 0, 10)], "RAW", CONFIG))


def test_a_range_deleted_by_retention_raises(
    kafka_settings: KafkaSettings, kafka_admin: object, topic: str
) -> None:
    from confluent_kafka import TopicPartition

    _write(kafka_settings, topic, 0, range(10))
    futures = kafka_admin.delete_records([TopicPartition(topic, 0, 4)])  # type: ignore[attr-defined]
    for future in futures.values():
        future.result(timeout=30)
    with pytest.raises(RangeReadError, match="were deleted"):
        list(read_ranges(kafka_settings, [TopicRange(topic, 0, 0, 10)], "RAW", CONFIG))
