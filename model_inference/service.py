"""The inference loop: micro-batch consume, one prediction call, exactly-once produce.

Each batch is one Kafka transaction on the input cluster: the outputs (and the dead letters)
are produced in it and the consumed offsets are committed with it
(`send_offsets_to_transaction`), so a consumer of the output topic that reads `read_committed`
sees every input answered exactly once, whatever crashes, restarts and rebalances happen.
Revocation is safe because callbacks run only inside `consume()`, when no transaction is open,
and because the group generation travels with the offsets (KIP-447): offsets of a replica that
lost its partitions are refused and its transaction aborted.

Output and upper topics on another cluster than the input cannot join that transaction: they
are written by their own idempotent producers and flushed before the commit (at-least-once for
that direction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from kafkaml.protocol import DecodeError, InputFormat, decode_batch
from model_inference.metrics import InferenceMetrics
from model_inference.predictions import (
    format_values,
    forward_mask,
    split_output,
    tensor_rows,
)
from model_inference.swap import ModelSwapper, ServingModel

log = logging.getLogger(__name__)

MODEL_VERSION_HEADER = "kafkaml-model-version"
ERROR_HEADER = "kafkaml-error"
SOURCE_HEADER = "kafkaml-source"
# A batch with this many bad records stops bisecting by error index and decodes one by one.
_INDEXED_RETRIES = 8
_DEAD_LETTERS_LOGGED_PER_BATCH = 10
_LAG_INTERVAL_S = 1.0

Decoder = Callable[[Sequence[bytes]], np.ndarray]
"""Values of a batch to the model's input (leading batch axis); raises DecodeError."""
Headers = list[tuple[str, bytes | None]] | None


def decoder_for(input_format: str, input_config: Mapping[str, Any]) -> Decoder:
    """The protocol's batch decoder for an input format and its configuration.

    Raises ValueError for an unknown format name.
    """
    chosen = InputFormat(input_format)

    def decode(values: Sequence[bytes]) -> np.ndarray:
        x, _ = decode_batch(chosen, input_config, values)
        return x

    return decode


class InferenceError(RuntimeError):
    """The inference cannot go on (fenced producer, broker refused, output undeliverable)."""


@dataclass(frozen=True)
class Routes:
    """Where the answers go: output topic, early-exit upper topic and limit, dead letters."""

    output_topic: str
    dlq_topic: str
    upper_topic: str | None = None
    limit: float | None = None

    @property
    def early_exit(self) -> bool:
        return self.upper_topic is not None and self.limit is not None


@dataclass(frozen=True)
class Producers:
    """The transactional producer on the input cluster and the producers of each direction.

    `output` and `upper` are the transactional producer itself when their topic lives on the
    input cluster (exactly-once), or plain producers of another cluster (at-least-once).
    """

    transactional: Producer
    output: Producer
    upper: Producer

    def foreign(self) -> list[Producer]:
        """The producers outside the transaction, each once."""
        seen: list[Producer] = []
        for producer in (self.output, self.upper):
            if producer is not self.transactional and producer not in seen:
                seen.append(producer)
        return seen


@dataclass
class _Records:
    """Parallel lists of the records for one destination."""

    values: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    headers: list[Headers] = field(default_factory=list)


@dataclass
class _Answers:
    output: _Records
    upper: _Records
    dead: list[tuple[Message, DecodeError]]


class InferenceService:
    """One replica's loop over its share of the input topic's partitions.

    Give it a consumer (its group is the inference's group), the producers, the routes, the
    decoder of the input format and the model to serve; `subscribe`, then `run` until a stop
    event, or call `process_batch` in a loop. `close` leaves the group.
    """

    def __init__(
        self,
        *,
        consumer: Consumer,
        producers: Producers,
        routes: Routes,
        decode: Decoder,
        model: ServingModel,
        swapper: ModelSwapper | None = None,
        max_batch: int = 10_000,
        max_wait_ms: int = 20,
        metrics: InferenceMetrics | None = None,
        transaction_timeout_s: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._producers = producers
        self._routes = routes
        self._decode = decode
        self._model = model
        self._swapper = swapper
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000
        self.metrics = metrics or InferenceMetrics()
        self._timeout_s = transaction_timeout_s
        self._foreign_failures: list[KafkaError] = []
        self._next_lag = 0.0
        self._closed = False
        self.committed_records = 0
        """Input records whose answers this service has committed (for tests and benchmarks)."""
        self.metrics.serving(model.version, None)

    @property
    def model_version(self) -> str:
        return self._model.version

    def subscribe(self, input_topic: str) -> None:
        """Join the consumer group on `input_topic`."""
        self._consumer.subscribe(
            [input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def assignment(self) -> list[TopicPartition]:
        """The input partitions this replica owns now."""
        return list(self._consumer.assignment())

    def run(self, stop: threading.Event) -> None:
        """Process batches until `stop` is set; the batch in hand is finished and committed."""
        while not stop.is_set():
            self.process_batch()

    def close(self) -> None:
        """Leave the group (its partitions go to the other replicas).

        The transactional producer holds nothing to flush: every transaction it began was
        committed or aborted (or is abandoned by a failure, and aborted by the broker).
        """
        if self._closed:
            return
        self._closed = True
        self._consumer.close()
        for producer in self._producers.foreign():
            producer.flush(self._timeout_s)

    def process_batch(self) -> int:
        """Consume one micro-batch, answer it and commit it. Returns the records consumed.

        A batch whose transaction aborts is rewound to the committed offsets and returns 0;
        its records come again in a later batch. Raises InferenceError when it cannot go on.
        """
        self._swap_if_due()
        messages = self._consume()
        if messages:
            started = time.perf_counter()
            offsets = self._positions()
            answers = self._answer(messages)
            if not self._commit(answers, offsets):
                return 0
            self.committed_records += len(messages)
            self.metrics.latency.observe(time.perf_counter() - started)
            self.metrics.record_batch(len(messages), len(answers.output.values),
                                      len(answers.upper.values), len(answers.dead))  # fmt: skip
        self._measure_lag()
        return len(messages)

    # -- consuming ---------------------------------------------------------------------------

    def _consume(self) -> list[Message]:
        messages = self._consumer.consume(self._max_batch, self._max_wait_s)
        if not messages:
            return messages
        good = [message for message in messages if message.error() is None]
        if len(good) != len(messages):
            for message in messages:
                if message.error() is not None:
                    self._consumer_error(message.error())
        return good

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise InferenceError(f"the input consumer failed: {error}")
        log.warning("input consumer: %s", error)

    def _positions(self) -> list[TopicPartition]:
        """The offsets to commit with this batch: the next position in each owned partition."""
        positions = self._consumer.position(self._consumer.assignment())
        return [tp for tp in positions if tp.offset >= 0]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing to finish: callbacks run inside consume(), between two transactions.
        log.info("revoked %s", _describe(partitions))

    def _measure_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag:
            return
        self._next_lag = now + _LAG_INTERVAL_S
        lag = 0
        for tp in self._positions():
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            lag += max(high - tp.offset, 0) if high >= 0 else 0
        self.metrics.lag.set(lag)

    # -- answering -----------------------------------------------------------------------------

    def _answer(self, messages: list[Message]) -> _Answers:
        """Decode, predict once, and route every record of the batch to its destination."""
        kept, x, dead = self._decode_batch(messages)
        answers = _Answers(_Records(), _Records(), dead)
        if not kept:
            return answers
        output = self._model.predictor.predict_batch(x)
        to_upper, prediction = split_output(output, len(kept), self._routes.early_exit)
        if to_upper is None:
            answers.output = _records(kept, format_values(prediction))
            return answers
        assert self._routes.limit is not None  # early_exit implies a limit
        forward = forward_mask(prediction, self._routes.limit)
        up, out = np.flatnonzero(forward), np.flatnonzero(~forward)
        answers.upper = _records([kept[i] for i in up], tensor_rows(to_upper[up]))
        answers.output = _records([kept[i] for i in out], format_values(prediction[out]))
        return answers

    def _decode_batch(
        self, messages: list[Message]
    ) -> tuple[list[Message], np.ndarray | None, list[tuple[Message, DecodeError]]]:
        """(decodable messages, their decoded batch, undecodable messages with their error)."""
        values = [message.value() for message in messages]
        try:
            return messages, self._decode(values), []
        except DecodeError:
            pass  # the slow path below finds the bad records
        kept, dead = self._separate(messages)
        if not kept:
            return kept, None, dead
        return kept, self._decode([message.value() for message in kept]), dead

    def _separate(
        self, messages: list[Message]
    ) -> tuple[list[Message], list[tuple[Message, DecodeError]]]:
        """Drop the records the decoder names by index; then test the rest one by one."""
        kept, dead = list(messages), []
        for _ in range(_INDEXED_RETRIES):
            try:
                self._decode([message.value() for message in kept])
                return kept, dead
            except DecodeError as error:
                if error.index is None or not 0 <= error.index < len(kept):
                    break
                dead.append((kept.pop(error.index), error))
        good = []
        for message in kept:
            try:
                self._decode([message.value()])
                good.append(message)
            except DecodeError as error:
                dead.append((message, error))
        return good, dead

    # -- producing and committing --------------------------------------------------------------

    def _commit(self, answers: _Answers, offsets: list[TopicPartition]) -> bool:
        """Produce the answers and commit the offsets in one transaction; False if aborted."""
        transactional = self._producers.transactional
        try:
            transactional.begin_transaction()
            self._produce_answers(answers)
            self._flush_foreign()
            transactional.send_offsets_to_transaction(
                offsets, self._consumer.consumer_group_metadata(), self._timeout_s
            )
            self._commit_transaction()
        except KafkaException as exception:
            error: KafkaError = exception.args[0]
            if not error.txn_requires_abort():
                raise InferenceError(f"the transaction failed: {error}") from exception
            self._abort_and_rewind(error)
            return False
        return True

    def _produce_answers(self, answers: _Answers) -> None:
        version = [(MODEL_VERSION_HEADER, self._model.version.encode())]
        routes = self._routes
        self._produce(self._producers.output, routes.output_topic, answers.output, version)
        if answers.upper.values:
            assert routes.upper_topic is not None  # only an early-exit tier forwards
            self._produce(self._producers.upper, routes.upper_topic, answers.upper, version)
        if answers.dead:
            self._produce_dead(answers.dead)

    def _produce(
        self, producer: Producer, topic: str, records: _Records, version: list[Any]
    ) -> None:
        """Produce records with their key, their headers and the model-version header."""
        if producer is self._producers.transactional:
            _produce(producer, topic, records, version)
        else:
            _produce(producer, topic, records, version, self._on_foreign_delivery)

    def _on_foreign_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._foreign_failures.append(error)

    def _produce_dead(self, dead: list[tuple[Message, DecodeError]]) -> None:
        for count, (message, error) in enumerate(dead):
            source = f"{message.topic()}:{message.partition()}:{message.offset()}"
            if count < _DEAD_LETTERS_LOGGED_PER_BATCH:
                log.warning("undecodable record %s sent to %s: %s",
                            source, self._routes.dlq_topic, error)  # fmt: skip
            headers = [*(message.headers() or []), (ERROR_HEADER, str(error).encode()),
                       (SOURCE_HEADER, source.encode())]  # fmt: skip
            _produce_one(self._producers.transactional, self._routes.dlq_topic,
                         message.value(), message.key(), headers)  # fmt: skip
        if len(dead) > _DEAD_LETTERS_LOGGED_PER_BATCH:
            log.warning("%d undecodable records in this batch", len(dead))

    def _flush_foreign(self) -> None:
        """Deliver the other clusters' records before the offsets are committed."""
        for producer in self._producers.foreign():
            if producer.flush(self._timeout_s) > 0:
                raise InferenceError("records for another cluster were not delivered in time")
        if self._foreign_failures:
            raise InferenceError(f"records for another cluster failed: {self._foreign_failures[0]}")

    def _commit_transaction(self) -> None:
        while True:
            try:
                self._producers.transactional.commit_transaction(self._timeout_s)
                return
            except KafkaException as exception:
                if not exception.args[0].retriable():
                    raise
                log.warning("retrying the commit: %s", exception.args[0])

    def _abort_and_rewind(self, error: KafkaError) -> None:
        """Abort the open transaction and go back to the last committed offsets."""
        log.warning("aborting the transaction and rewinding: %s", error)
        self.metrics.aborted.inc()
        self._producers.transactional.abort_transaction(self._timeout_s)
        assignment = self._consumer.assignment()
        if not assignment:
            return
        for tp in self._consumer.committed(assignment, self._timeout_s):
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self._consumer.seek(tp)

    # -- model swap ---------------------------------------------------------------------------

    def _swap_if_due(self) -> None:
        if self._swapper is None:
            return
        swapped = self._swapper.poll(self._model)
        if swapped is not None:
            self.metrics.serving(swapped.version, self._model.version)
            self._model = swapped


def _records(messages: list[Message], values: list[bytes]) -> _Records:
    return _Records(values, [m.key() for m in messages], [m.headers() for m in messages])


DeliveryCallback = Callable[[KafkaError | None, Message], None]


def _produce(
    producer: Producer,
    topic: str,
    records: _Records,
    version: list[Any],
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """Produce records with their key, their headers plus `version` (the hot loop)."""
    produce = producer.produce
    for value, key, headers in zip(records.values, records.keys, records.headers, strict=True):
        all_headers = headers + version if headers else version
        try:
            if on_delivery is None:
                produce(topic, value, key, headers=all_headers)
            else:
                produce(topic, value, key, headers=all_headers, on_delivery=on_delivery)
        except BufferError:
            _produce_one(producer, topic, value, key, all_headers, on_delivery)


def _produce_one(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: Headers,
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """Produce one record, waiting for room in the producer's queue when it is full."""
    while True:
        try:
            if on_delivery is None:
                producer.produce(topic, value, key, headers=headers)
            else:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
