"""Waiting for the job's control message: the announcement of its data stream.

The control topic is read from the deployment's creation time on every partition (via
`offsets_for_times`), with no consumer group and no commits, so a stream announced before the
job started is found and stale announcements of older deployments are never taken.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kafkaml.protocol import ControlMessage, ControlMessageError

log = logging.getLogger(__name__)


class ControlTimeoutError(TimeoutError):
    """No control message for the deployment arrived before the deadline."""


class BrokerUnreachableError(ConnectionError):
    """The Kafka brokers did not answer, however often they were asked, until the deadline."""


@dataclass(frozen=True)
class Announcement:
    """The job's control message and the broker timestamp (ms) of its record."""

    message: ControlMessage
    timestamp_ms: int


def wait_for_control(
    consumer: Consumer,
    control_topic: str,
    deployment_id: int,
    since: datetime,
    timeout_s: float,
) -> Announcement:
    """The first valid control message for `deployment_id` written at or after `since`.

    `consumer` must be a fresh consumer with no subscription; it is left assigned. Malformed
    control messages and those of other deployments are skipped (the malformed ones with a log
    line). Raises ControlTimeoutError when none arrives within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    since_ms = int(since.timestamp() * 1000)
    partitions = _partitions(consumer, control_topic, deadline)
    consumer.assign(_starting_offsets(consumer, control_topic, partitions, since_ms, deadline))
    while (remaining := deadline - time.monotonic()) > 0:
        for record in consumer.consume(num_messages=500, timeout=min(1.0, remaining)):
            found = _matching(record, deployment_id, since_ms)
            if found is not None:
                return found
    raise ControlTimeoutError(
        f"no control message for deployment {deployment_id} arrived on topic "
        f"{control_topic!r} within {timeout_s:g} s"
    )


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """The control topic's partitions, waiting until the deadline for the topic to exist and
    for the brokers to answer (BrokerUnreachableError when they never did)."""
    unreachable: KafkaException | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            metadata = consumer.list_topics(topic, timeout=max(0.1, min(5.0, remaining)))
        except KafkaException as error:
            unreachable, metadata = error, None
        described = metadata.topics.get(topic) if metadata is not None else None
        if described is not None and described.error is None and described.partitions:
            return sorted(described.partitions)
        if remaining <= 0 and unreachable is not None and metadata is None:
            raise BrokerUnreachableError(
                f"the Kafka brokers did not answer until the control timeout: {unreachable}"
            )
        if remaining <= 0:
            raise ControlTimeoutError(f"the control topic {topic!r} does not exist")
        # list_topics returned at once (unknown topic): wait a little before asking again.
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _starting_offsets(
    consumer: Consumer, topic: str, partitions: list[int], since_ms: int, deadline: float
) -> list[TopicPartition]:
    """Per partition, the first offset written at or after `since_ms`.

    Where nothing is that recent yet, the high watermark read *before* the lookup: records
    appended in between are read too, and old ones are filtered out by timestamp.
    """
    timeout = max(1.0, deadline - time.monotonic())
    highs = {
        partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout)[1]
        for partition in partitions
    }
    lookups = [TopicPartition(topic, partition, since_ms) for partition in partitions]
    found = consumer.offsets_for_times(lookups, timeout=timeout)
    return [
        TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else highs[tp.partition])
        for tp in found
    ]


def _matching(record: Message, deployment_id: int, since_ms: int) -> Announcement | None:
    error = record.error()
    if error is not None:
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("control topic read error: %s", error.str())
        return None
    _, timestamp_ms = record.timestamp()
    if timestamp_ms < since_ms:
        return None
    try:
        message = ControlMessage.from_record(record.key(), record.value())
    except ControlMessageError as error:
        log.warning(
            "skipping a malformed control message (topic %s, partition %s, offset %s): %s",
            record.topic(),
            record.partition(),
            record.offset(),
            error,
        )
        return None
    if message.deployment_id != deployment_id:
        return None
    log.info(
        "control message for deployment %s found at %s:%s:%s",
        deployment_id,
        record.topic(),
        record.partition(),
        record.offset(),
    )
    return Announcement(message, timestamp_ms)
