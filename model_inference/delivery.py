"""The inference's delivery guarantee, chosen per inference: `exactly-once` or `at-least-once`.

`exactly-once` (the default) is `transactions.BatchWriter`: one transaction per batch with its
input offsets. `at-least-once` writes the same batches, answers and dead letters without
transactions, for consumers that cannot read transactional topics (kafka-python 2.0.2 returns
the transaction markers as records; a consumer reading `read_uncommitted` sees aborted
batches): each batch is produced by an idempotent producer, and its input offsets are stored
for the consumer's automatic commit (every AT_LEAST_ONCE_COMMIT_INTERVAL_MS, on a rebalance,
on close) only once the producer's queue has been seen empty after the batch was produced, with
no failed delivery reported: every record of the batch, and of every earlier batch, was then
acknowledged. Up to AT_LEAST_ONCE_WINDOW batches are produced before the oldest must be
delivered, so producing a batch does not wait for the delivery of the one before. A crash
answers the records delivered since the last commit again: duplicates, never losses.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from model_inference.answers import Routes
from model_inference.spec import DEFAULT_DELIVERY, DELIVERIES, Delivery
from model_inference.transactions import BatchWriter, ForeignDeliveryError, Producers

log = logging.getLogger(__name__)

AT_LEAST_ONCE_COMMIT_INTERVAL_MS = 1000
"""How often the input consumer commits the stored offsets of delivered batches."""
AT_LEAST_ONCE_WINDOW = 4
"""Batches produced but not yet seen delivered, at most: the next batch waits for a flush."""

__all__ = [
    "AT_LEAST_ONCE_COMMIT_INTERVAL_MS",
    "AT_LEAST_ONCE_WINDOW",
    "DEFAULT_DELIVERY",
    "DELIVERIES",
    "AtLeastOnceWriter",
    "Delivery",
    "DeliveryError",
    "DeliveryFailures",
]


class DeliveryError(ForeignDeliveryError):
    """Records of an at-least-once batch were not delivered (the service then ends)."""


class DeliveryFailures:
    """The producer's delivery callback (only failures are reported to it) and what it got."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(error)


class AtLeastOnceWriter(BatchWriter):
    """Produces answered batches without transactions; commits the offsets once delivered.

    `producers.transactional` is here the input cluster's plain idempotent producer, whose
    failed deliveries are reported to `failures`; nothing else may produce with it. `settle`
    serves its reports and stores the offsets of the delivered batches for the consumer's
    automatic commit (the consumer must have `enable.auto.offset.store` off; a lost commit only
    answers records again). A batch counts as delivered once the producer's queue, which also
    holds the records in flight and the unserved reports, is empty after the batch was
    produced: that is checked between two batches, when the queue has had the longest to
    drain, and waited for (a flush) only when `window` batches would otherwise be pending.
    Raises DeliveryError from `settle` when a record was not delivered.
    """

    window = AT_LEAST_ONCE_WINDOW

    def __init__(
        self,
        producers: Producers,
        routes: Routes,
        timeout_s: float,
        consumer: Consumer,
        failures: DeliveryFailures,
    ) -> None:
        super().__init__(producers, routes, timeout_s)
        self._consumer = consumer
        self._failures = failures
        self._pending: deque[list[TopicPartition]] = deque()  # offsets per batch, oldest first

    def _begin(self) -> None:
        """No transaction to open."""

    def commit_async(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Leave the batch's offsets pending; `settle` stores them once it is delivered."""
        self._pending.append(offsets)

    def settle(self, keep: int = 0) -> list[float]:
        """Store the offsets of every batch delivered by now, waiting for deliveries only while
        more than `keep` batches are pending; when each was seen delivered, oldest first.

        Raises DeliveryError when a record was not delivered (in time); nothing pending is
        stored then.
        """
        if not self._pending:
            return []
        producer = self._producers.transactional
        producer.poll(0)  # serves the failure reports
        self._raise_failures()
        if len(producer) > 0:
            if len(self._pending) <= keep:
                return []
            remaining = producer.flush(self._timeout_s)
            self._raise_failures()
            if remaining > 0:
                self._pending.clear()
                raise DeliveryError(f"{remaining} records were not delivered in time")
        delivered_at = time.perf_counter()
        settled = [delivered_at] * len(self._pending)
        while self._pending:
            self._store_offsets(self._pending.popleft())
        return settled

    def abort(self) -> None:
        """Nothing to abort: what was delivered stays, and its records come again."""

    def _raise_failures(self) -> None:
        if self._failures.errors:
            self._pending.clear()
            raise DeliveryError(f"records were not delivered: {self._failures.errors[0]}")

    def _store_offsets(self, offsets: list[TopicPartition]) -> None:
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exception:
            # E.g. partitions revoked meanwhile: their next owner answers those records again.
            log.warning("the offsets were not stored for commit: %s", exception.args[0])
