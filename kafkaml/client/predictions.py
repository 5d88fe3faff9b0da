"""Send inputs to an inference's topic and read its answers back, matched to inputs by key.

An inference keeps each input record's key on its answer (and its headers), so a caller that
gives every input a unique key finds the answer to each, whatever the order, the number of
replicas, or the partitions. Answers are read `read_committed`: only what a replica's
transaction committed, never a record of an aborted batch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kafkaml.client.errors import KafkamlError
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.protocol.answers import answer_values, model_version
from kafkaml.protocol.formats import side_from_config

_BATCH = 10_000


@dataclass(frozen=True)
class Prediction:
    """One answer: the input's key, the model's output values, where it was read."""

    key: bytes
    values: Any
    topic: str
    partition: int
    offset: int
    model_version: str | None = None  # of the model that answered (changes with a swap)

    @property
    def argmax(self) -> int:
        """The index of the largest value (the class, for a classifier)."""
        return int(np.argmax(np.asarray(self.values)))


def unique_keys(count: int) -> list[bytes]:
    """`count` keys no other input has: a random prefix and the row's index."""
    prefix = uuid.uuid4().hex[:12]
    return [f"{prefix}-{i}".encode() for i in range(count)]


def send_inputs(
    kafka: KafkaSettings,
    topic: str,
    rows: Any,
    keys: Sequence[bytes],
    *,
    input_format: str = "RAW",
    input_config: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> None:
    """Produce one record per row of `rows` (encoded as the inference decodes its input) with
    the given keys, and wait until every one is delivered. Raises KafkamlError otherwise."""
    side = side_from_config(input_format, input_config or {}, "data")
    values = side.encode(rows, "data")
    if len(values) != len(keys):
        raise KafkamlError(f"{len(values)} inputs but {len(keys)} keys")
    producer = make_producer(kafka, linger_ms=5)
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value in zip(keys, values, strict=True):
        _produce(producer, topic, key, value, delivered)
    left = producer.flush(timeout_s)
    if left or failures:
        raise KafkamlError(
            f"{left + len(failures)} of {len(keys)} inputs were not delivered to {topic}",
            extra={"errors": failures[:5]},
        )


def _produce(producer: Any, topic: str, key: bytes, value: bytes, delivered: Any) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


class PredictionReader:
    """Reads answers from one or more output topics, from their beginning, `read_committed`.

    Open it (a context manager) before or after sending: it reads every committed answer, in a
    private consumer group, and keeps the ones whose key was asked for.
    """

    def __init__(self, kafka: KafkaSettings, topics: Iterable[str]) -> None:
        self._consumer = make_consumer(
            kafka,
            group_id=f"kafkaml-client-{uuid.uuid4().hex[:12]}",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._consumer.subscribe(list(topics))
        self._answers: dict[bytes, Prediction] = {}

    def __enter__(self) -> PredictionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def read(
        self, keys: Sequence[bytes], *, timeout_s: float = 120.0, exactly_once: bool = True
    ) -> list[Prediction]:
        """The answer to each key, in the keys' order.

        Raises KafkamlError when some key has no answer within `timeout_s` (`extra` says how
        many were missing) or, with `exactly_once`, when a key was answered twice.
        """
        wanted = set(keys)
        deadline = time.monotonic() + timeout_s
        while not wanted.issubset(self._answers):
            if time.monotonic() > deadline:
                missing = len(wanted - set(self._answers))
                raise KafkamlError(
                    f"{missing} of {len(wanted)} inputs had no answer after {timeout_s:g} s",
                    extra={"missing": missing, "answered": len(wanted) - missing},
                )
            self._take(self._consumer.consume(_BATCH, 0.5), wanted, exactly_once)
        return [self._answers[key] for key in keys]

    def _take(self, messages: list[Any], wanted: set[bytes], exactly_once: bool) -> None:
        for message in messages:
            if message.error() is not None or message.key() not in wanted:
                continue
            key = message.key()
            if exactly_once and key in self._answers:
                raise KafkamlError(
                    f"input {key!r} was answered twice",
                    extra={"offsets": [self._answers[key].offset, message.offset()]},
                )
            self._answers[key] = Prediction(
                key=key,
                values=answer_values(message.value()),
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                model_version=model_version(message.headers()),
            )
