"""Topic ranges: the `name:partition:start:end,...` text that tells a job which records to read.

`end` is an absolute offset, exclusive (the same meaning as Kafka-ML's sinks and the legacy
tensorflow-io `KafkaDataset` subscription syntax). A text without colons is a bare topic name:
an online stream with no end, announced by incremental sinks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kafkaml.protocol.errors import TopicRangeError

# Kafka's own rule for topic names (kafka.common.internals.Topic): at most 249 of these.
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
# Kafka's offsets are signed 64-bit integers and its partition numbers signed 32-bit ones; so
# are the database columns that store them.
OFFSET_MAX = 2**63 - 1
PARTITION_MAX = 2**31 - 1


@dataclass(frozen=True)
class TopicRange:
    """The records of one partition with offsets in `[start, end)`."""

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not _TOPIC_NAME.match(self.topic):
            raise TopicRangeError(f"{self.topic!r} is not a valid Kafka topic name")
        if not 0 <= self.partition <= PARTITION_MAX:
            raise TopicRangeError(
                f"partition {self.partition} of {self.topic!r} is not in 0..{PARTITION_MAX}"
            )
        if self.end > OFFSET_MAX:
            raise TopicRangeError(
                f"offset {self.end} of {self.topic}:{self.partition} is beyond Kafka's largest "
                f"offset {OFFSET_MAX}"
            )
        if not 0 <= self.start <= self.end:
            raise TopicRangeError(
                f"range {self.start}..{self.end} of {self.topic}:{self.partition} needs "
                "0 <= start <= end"
            )

    @property
    def size(self) -> int:
        """How many offsets the range spans (the record count when no offset is a gap)."""
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.start}:{self.end}"


def is_bare_topic(text: str) -> bool:
    """Whether `text` names a whole topic (an online stream) rather than listing ranges."""
    return ":" not in text


def validate_topic_name(name: str) -> str:
    """`name` if Kafka accepts it as a topic name; raises TopicRangeError otherwise."""
    if not _TOPIC_NAME.match(name):
        raise TopicRangeError(f"{name!r} is not a valid Kafka topic name")
    return name


def parse_ranges(text: str) -> list[TopicRange]:
    """The ranges of a `name:partition:start:end,...` text, in the order written.

    Raises TopicRangeError for an entry that has not four fields, a non-integer field, or
    offsets out of order. Whitespace around entries is ignored.
    """
    entries = [entry.strip() for entry in text.split(",")]
    return [_parse_entry(entry) for entry in entries]


def _parse_entry(entry: str) -> TopicRange:
    fields = entry.split(":")
    if len(fields) != 4:
        raise TopicRangeError(f"topic range {entry!r} is not name:partition:start:end")
    name, *numbers = fields
    try:
        partition, start, end = (_non_negative_int(number) for number in numbers)
    except ValueError:
        raise TopicRangeError(
            f"topic range {entry!r} needs integer partition, start and end"
        ) from None
    return TopicRange(name, partition, start, end)


def _non_negative_int(text: str) -> int:
    # int() would also take "+1", " 1" and "1_000"; the wire has plain decimal digits only.
    if not text.isdigit() or not text.isascii():
        raise ValueError(text)
    return int(text)


def format_ranges(ranges: Iterable[TopicRange]) -> str:
    """The wire text of `ranges`; the inverse of `parse_ranges`. Raises TopicRangeError if empty."""
    text = ",".join(str(topic_range) for topic_range in ranges)
    if not text:
        raise TopicRangeError("no topic ranges to announce")
    return text
