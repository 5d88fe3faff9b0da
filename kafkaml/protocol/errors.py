"""The errors of the wire protocol, named for what went wrong and carrying where it happened.

Every error a producer or consumer can trigger with bad bytes or a bad configuration is a
`ProtocolError` (a `ValueError`), so a stream processor can catch one type, log the record's
topic/partition/offset and move on; a broker that cannot be read is a `RangeReadError` instead.
"""

from __future__ import annotations

import dataclasses


class ProtocolError(ValueError):
    """Bytes or settings that do not follow the wire format. `str()` names the record's location."""

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def __str__(self) -> str:
        facts = [
            f"{name} {value}"
            for name, value in (
                ("topic", self.topic),
                ("partition", self.partition),
                ("offset", self.offset),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(facts)})" if facts else self.message


class DecodeError(ProtocolError):
    """A record's value or key cannot be decoded with the announced format and input_config.

    `index` is the position of the bad record in the batch handed to the decoder, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, topic=topic, partition=partition, offset=offset)
        self.index = index

    def at(self, topic: str, partition: int, offset: int) -> DecodeError:
        """The same error, located at the record the reader took from the broker."""
        return DecodeError(
            self.message, topic=topic, partition=partition, offset=offset, index=self.index
        )


class InputConfigError(DecodeError):
    """An input_config that is unusable: a missing key, an unknown dtype, a bad schema."""


class EncodeError(ProtocolError):
    """A sample cannot be written in the sink's format (wrong shape, type or schema)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ControlMessageError(ProtocolError):
    """A control message with a missing or invalid field, or a key that is no deployment id."""


class TopicRangeError(ProtocolError):
    """Text that is not a `name:partition:start:end,...` list of topic ranges."""


@dataclasses.dataclass
class RangeReadError(RuntimeError):
    """The broker cannot deliver an announced range (deleted, never written, stalled)."""

    message: str
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.message} (topic {self.topic}, partition {self.partition})"

    def __reduce__(self) -> tuple[type[RangeReadError], tuple[str, str, int]]:
        # The training job's reader process sends its errors to the job pickled.
        return type(self), (self.message, self.topic, self.partition)
