"""Windows of an unbounded (online) topic, as they arrive, for incremental training.

The data topic is read on every partition from the control message's timestamp (an online sink
announces its stream before the first sample), with no consumer group and no commits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kafkaml.protocol import DecodeError, InputFormat, decode_batch
from model_training.dataset import Samples

# A partial window is trained on once the stream pauses this long.
PAUSE_S = 1.0


def assign_from(consumer: Consumer, topic: str, since_ms: int, timeout_s: float = 30.0) -> None:
    """Assign every partition of `topic` at its first offset written at or after `since_ms`."""
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {topic!r}"))
    lookups = [TopicPartition(topic, partition, since_ms) for partition in described.partitions]
    found = consumer.offsets_for_times(lookups, timeout=timeout_s)
    # -1: nothing that recent yet, so start at the end (OFFSET_END), where new records land.
    consumer.assign(
        [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else -1) for tp in found]
    )


def windows(
    consumer: Consumer,
    input_format: InputFormat,
    input_config: Mapping[str, Any],
    window: int,
    stream_timeout_s: float | None,
    *,
    labeled: bool = True,
) -> Iterator[Samples]:
    """Decoded windows of at most `window` samples from an assigned consumer.

    `labeled` False ignores the keys (a stream without labels): the windows' y is None.
    A window is yielded when full, or when the stream pauses (PAUSE_S) with samples held.
    The iteration ends once no record arrives for `stream_timeout_s` of waiting (None: never);
    the time the caller spends on a window does not count.
    Raises DecodeError located at the bad record.
    """
    held: list[Message] = []
    last_data = time.monotonic()
    while stream_timeout_s is None or time.monotonic() - last_data < stream_timeout_s:
        records = [r for r in consumer.consume(window - len(held), PAUSE_S) if _ok(r)]
        if records:
            held.extend(records)
            last_data = time.monotonic()
        if held and (len(held) >= window or not records):
            yield _decode(held, input_format, input_config, labeled)
            held = []
            # The time the caller trained on the window is not time without data.
            last_data = time.monotonic()
    if held:
        yield _decode(held, input_format, input_config, labeled)


def _ok(record: Message) -> bool:
    error = record.error()
    if error is None:
        return True
    if error.code() == KafkaError._PARTITION_EOF:
        return False
    raise KafkaException(error)


def _decode(
    records: list[Message],
    input_format: InputFormat,
    input_config: Mapping[str, Any],
    labeled: bool,
) -> Samples:
    values = [record.value() for record in records]
    keys = [record.key() for record in records] if labeled else None
    try:
        x, y = decode_batch(input_format, input_config, values, keys)
    except DecodeError as error:
        if error.index is None:
            raise
        bad = records[error.index]
        raise error.at(
            str(bad.topic()), int(bad.partition() or 0), int(bad.offset() or 0)
        ) from None
    return Samples(x, y)
