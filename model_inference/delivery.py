"""The inference's delivery guarantee, chosen per inference: `exactly-once` or `at-least-once`.

`exactly-once` (the default) is `transactions.BatchWriter`: one transaction per batch with its
input offsets. `at-least-once` writes the same batches, answers and dead letters without
transactions, for consumers that cannot read transactional topics (kafka-python 2.0.2 returns
the transaction markers as records; a consumer reading `read_uncommitted` sees aborted
batches): each batch is produced by an idempotent producer, delivered (flushed on the helper
thread while the next batch is predicted), and only then are its input offsets stored for the
consumer's automatic commit (every AT_LEAST_ONCE_COMMIT_INTERVAL_MS, on a rebalance, on close):
a local call, where an explicit commit per batch cost milliseconds of the loop's thread. A crash
answers the records delivered since the last commit again: duplicates, never losses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from model_inference.answers import Routes
from model_inference.spec import DEFAULT_DELIVERY, DELIVERIES, Delivery
from model_inference.transactions import BatchWriter, ForeignDeliveryError, Producers

log = logging.getLogger(__name__)

AT_LEAST_ONCE_COMMIT_INTERVAL_MS = 1000
"""How often the input consumer commits the stored offsets of delivered batches."""

__all__ = [
    "AT_LEAST_ONCE_COMMIT_INTERVAL_MS",
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
    failed deliveries are reported to `failures`. The offsets of a batch are stored for the
    consumer's automatic commit once `settle` has seen the batch delivered (the consumer must
    have `enable.auto.offset.store` off; a lost commit only answers records again). Raises
    DeliveryError from `settle` when a record was not delivered.
    """

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
        self._offsets: list[TopicPartition] | None = None

    def _begin(self) -> None:
        """No transaction to open."""

    def commit_async(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Deliver the batch on the helper thread; `settle` stores its offsets afterwards."""
        self._offsets = offsets
        self._in_flight = self._committer.submit(self._deliver)

    def settle(self) -> float | None:
        offsets, self._offsets = self._offsets, None
        delivered_at = super().settle()
        if offsets:
            self._commit_offsets(offsets)
        return delivered_at

    def abort(self) -> None:
        """Nothing to abort: what was delivered stays, and its records come again."""

    def _deliver(self) -> float:
        remaining = self._producers.transactional.flush(self._timeout_s)
        if remaining > 0:
            raise DeliveryError(f"{remaining} records were not delivered in time")
        if self._failures.errors:
            raise DeliveryError(f"records were not delivered: {self._failures.errors[0]}")
        return time.perf_counter()

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exception:
            # E.g. partitions revoked meanwhile: their next owner answers those records again.
            log.warning("the offsets were not stored for commit: %s", exception.args[0])
