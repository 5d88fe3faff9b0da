"""Writing answered batches: one Kafka transaction per batch, its commit overlapped with the next.

The transaction of batch k is begun and filled on the caller's thread; its offsets are sent and
it is committed on a helper thread while the caller consumes and predicts batch k+1. Batch k+1
is produced only after batch k's commit has settled (a producer has one transaction at a time),
so the order of the outputs is the order of the inputs and a failed commit is seen before
anything of the next batch is written.

A broker outage is ridden out: a transactional call that times out (retriable, not abortable)
is tried again a few times; when the producer still cannot finish its transaction, `renew`
replaces it by a new producer with the same transactional id, whose initialisation waits for
the broker and fences the old one (the broker aborts the transaction it left open). The
caller then rewinds to the committed offsets, so every input is still answered exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from kafkaml.protocol.answers import MODEL_VERSION_HEADER
from model_inference.answers import Answers, Routed, Routes

log = logging.getLogger(__name__)

ERROR_HEADER = "kafkaml-error"
SOURCE_HEADER = "kafkaml-source"
_DEAD_LETTERS_LOGGED_PER_BATCH = 10
_RETRY_PAUSE_S = (0.1, 2.0)  # first and longest pause between two tries of a retriable call
# Tries of a timed-out transactional call on one producer before it is renewed: after a broker
# restart, librdkafka's coordinator request could stay queued for good (seen with 2.x).
SAME_PRODUCER_TRIES = 2
_SETTLE_MARGIN_S = 5.0  # beyond its calls' timeouts, before a commit counts as stuck

# Arguments of `Producer.produce(topic, value, key, partition, callback, on_delivery, timestamp,
# headers)`, passed by position: keywords cost a dict and a name match per call, about 0.25 us
# a record on the loop's thread (0.83 -> 0.59 us a call with headers; docs/delivery.md).
_ANY_PARTITION = -1  # the producer's partitioner picks it from the key
_NOW = 0  # the record's timestamp is the producer's clock
Headers = list[tuple[str, str | bytes | None]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class ForeignDeliveryError(RuntimeError):
    """Records for a cluster outside the transaction could not be delivered."""


def retry_while_away(
    what: str, call: Callable[[], Any], outage_s: float, tries: int | None = None
) -> Any:
    """`call()`, called again while it raises a retriable KafkaException (a timeout while the
    broker is away), for at most `outage_s` after the first failure and at most `tries` calls;
    returns its value.

    Raises the KafkaException of an abortable or fatal error at once, and the last retriable
    one once `outage_s` has passed or the tries are spent.
    """
    deadline: float | None = None
    pause = _RETRY_PAUSE_S[0]
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except KafkaException as exception:
            error: KafkaError = exception.args[0]
            if not _retriable(error) or error.txn_requires_abort() or error.fatal():
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + outage_s
            if now >= deadline or (tries is not None and attempt >= tries):
                raise
            log.warning("%s failed, trying again in %.1f s: %s", what, pause, error)
            time.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE_S[1])


def _retriable(error: KafkaError) -> bool:
    """Retriable, or a timeout: `Consumer.committed` raises _TIMED_OUT without the retriable
    flag when the broker is still away or just back (a replica exited on it after a restart)."""
    return bool(error.retriable()) or error.code() == KafkaError._TIMED_OUT


@dataclass(frozen=True)
class Producers:
    """The transactional producer on the input cluster and the producers of each direction.

    `output` and `upper` are the transactional producer itself when their topic lives on the
    input cluster (exactly-once), or plain producers of another cluster (at-least-once: they
    are flushed before the offsets are committed).
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


class BatchWriter:
    """Produces answered batches and commits them with their input offsets, one at a time."""

    def __init__(
        self,
        producers: Producers,
        routes: Routes,
        timeout_s: float,
        outage_s: float = 300.0,
        renew: Callable[[], Producer] | None = None,
    ) -> None:
        self._producers = producers
        self._renew = renew
        self._routes = routes
        self._timeout_s = timeout_s
        self._outage_s = outage_s
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")
        self._in_flight: Future[float] | None = None
        self._foreign_failures: list[KafkaError] = []
        self._begun_at: float | None = None  # monotonic time the open transaction began

    def write(self, answers: Answers, model_version: str) -> None:
        """Begin a transaction and produce the batch's answers and dead letters into it.

        Call `settle` first. Raises KafkaException (see `txn_requires_abort`) and
        ForeignDeliveryError.
        """
        self._begin()
        version: Headers = [(MODEL_VERSION_HEADER, model_version.encode())]
        self._produce(self._producers.output, self._routes.output_topic, answers.output, version)
        if answers.upper.messages and self._routes.upper_topic is not None:
            self._produce(self._producers.upper, self._routes.upper_topic, answers.upper, version)
        if answers.dead:
            self._produce_dead(answers.dead)
        self._flush_foreign()

    def _begin(self) -> None:
        self._producers.transactional.begin_transaction()
        self._begun_at = time.monotonic()

    def transaction_age(self) -> float:
        """Seconds since the transaction now open (or just failed) began; 0.0 when none did.

        Older than the transaction timeout, it was aborted by its coordinator: a fence that
        follows is the coordinator's epoch bump, not another replica of the same name.
        """
        return time.monotonic() - self._begun_at if self._begun_at is not None else 0.0

    def commit_async(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Send the offsets to the open transaction and commit it, on the helper thread."""
        self._in_flight = self._committer.submit(self._commit, offsets, group_metadata)

    window = 1
    """Batches that may be in flight at once: a producer has one transaction at a time."""

    def settle(self, keep: int = 0) -> list[float]:
        """Wait until at most `keep` batches are in flight; the completion times (perf_counter)
        of the batches settled meanwhile, oldest first.

        Raises the commit's KafkaException; the transaction is then still open and must be
        aborted when the error `txn_requires_abort`. A commit that has not returned within
        the time its calls' own timeouts allow (after a broker restart librdkafka's
        `send_offsets_to_transaction` was seen to hang for good, past its timeout) raises a
        retriable _TIMED_OUT: the caller renews the producer, which fences the stuck one.
        """
        if keep >= 1:
            return []
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return []
        limit_s = 2 * SAME_PRODUCER_TRIES * self._timeout_s + _SETTLE_MARGIN_S
        try:
            committed_at = in_flight.result(timeout=limit_s)
        except FutureTimeout:
            self._abandon_committer()
            reason = f"the transaction's commit did not return within {limit_s:.0f} s"
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, reason, retriable=True)
            ) from None
        self._begun_at = None
        return [committed_at]

    def _abandon_committer(self) -> None:
        """Leave the stuck helper thread to its call; later commits get a thread of their own."""
        self._committer.shutdown(wait=False)
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commit")

    def abort(self) -> None:
        """Abort the open transaction: none of its records will ever be read committed.

        Retried while the broker is away (`retry_while_away`).
        """
        transactional = self._producers.transactional
        retry_while_away("aborting the transaction",
                         lambda: transactional.abort_transaction(self._timeout_s),
                         self._outage_s, SAME_PRODUCER_TRIES)  # fmt: skip
        self._begun_at = None

    @property
    def renewable(self) -> bool:
        """Whether `renew` can replace the transactional producer."""
        return self._renew is not None

    def renew(self) -> None:
        """Replace the transactional producer by a new one with the same transactional id.

        The new one's initialisation fences the old one, and the broker aborts the transaction
        the old one left open. Raises what the producer factory raises (KafkaException when the
        broker stayed away too long), RuntimeError when no factory was given.
        """
        if self._renew is None:
            raise RuntimeError("this writer was given no producer factory")
        old = self._producers.transactional
        old.purge()  # its records belong to the transaction being fenced
        new = self._renew()
        self._begun_at = None
        self._producers = Producers(
            new,
            new if self._producers.output is old else self._producers.output,
            new if self._producers.upper is old else self._producers.upper,
        )
        log.warning("the transactional producer was renewed; its open transaction is aborted")

    def close(self) -> None:
        """Stop the helper thread and deliver what the foreign producers hold."""
        self._committer.shutdown(wait=True)
        for producer in self._producers.foreign():
            producer.flush(self._timeout_s)

    def _commit(self, offsets: list[TopicPartition], group_metadata: Any) -> float:
        transactional = self._producers.transactional
        retry_while_away(
            "sending the offsets to the transaction",
            lambda: transactional.send_offsets_to_transaction(
                offsets, group_metadata, self._timeout_s
            ),
            self._outage_s,
            SAME_PRODUCER_TRIES,
        )
        retry_while_away("committing the transaction",
                         lambda: transactional.commit_transaction(self._timeout_s),
                         self._outage_s, SAME_PRODUCER_TRIES)  # fmt: skip
        return time.perf_counter()

    def _produce(self, producer: Producer, topic: str, routed: Routed, version: Headers) -> None:
        if producer is self._producers.transactional:
            _produce_all(producer, topic, routed, version)
        else:
            _produce_all(producer, topic, routed, version, self._on_foreign_delivery)

    def _on_foreign_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._foreign_failures.append(error)

    def _produce_dead(self, dead: Sequence[tuple[Message, Exception]]) -> None:
        """Each undecodable record, unchanged, with the error and its source in headers."""
        for count, (message, error) in enumerate(dead):
            source = f"{message.topic()}:{message.partition()}:{message.offset()}"
            if count < _DEAD_LETTERS_LOGGED_PER_BATCH:
                log.warning("undecodable record %s sent to %s: %s",
                            source, self._routes.dlq_topic, error)  # fmt: skip
            original: Headers = message.headers() or []  # type: ignore[assignment]
            headers = [*original, (ERROR_HEADER, str(error).encode()),
                       (SOURCE_HEADER, source.encode())]  # fmt: skip
            _produce_one(self._producers.transactional, self._routes.dlq_topic,
                         message.value(), message.key(), headers)  # fmt: skip
        if len(dead) > _DEAD_LETTERS_LOGGED_PER_BATCH:
            log.warning("%d undecodable records in this batch", len(dead))

    def _flush_foreign(self) -> None:
        """Deliver the other clusters' records before the offsets are committed."""
        for producer in self._producers.foreign():
            if producer.flush(self._timeout_s) > 0:
                raise ForeignDeliveryError("records for another cluster were not delivered in time")
        if self._foreign_failures:
            raise ForeignDeliveryError(
                f"records for another cluster failed: {self._foreign_failures[0]}"
            )


def _produce_all(
    producer: Producer,
    topic: str,
    routed: Routed,
    version: Headers,
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """Each record with its key, its headers plus `version` (the hot loop: keep it lean)."""
    produce = producer.produce
    for message, value in zip(routed.messages, routed.values, strict=True):
        # Consumed headers are a list of (name, value) pairs, or None.
        original: Any = message.headers()
        headers = original + version if original else version
        key = message.key()
        try:
            produce(topic, value, key, _ANY_PARTITION, on_delivery, None, _NOW, headers)
        except BufferError:
            _produce_one(producer, topic, value, key, headers, on_delivery)


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
            producer.produce(topic, value, key, _ANY_PARTITION, on_delivery, None, _NOW, headers)
            return
        except BufferError:
            producer.poll(0.05)
