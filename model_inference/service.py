"""The inference loop: micro-batch consume, one prediction call, exactly-once produce.

Each batch is one Kafka transaction on the input cluster: the outputs (and the dead letters)
are produced in it and the consumed offsets are committed with it
(`send_offsets_to_transaction`), so a consumer of the output topic that reads `read_committed`
sees every input answered exactly once, whatever crashes, restarts and rebalances happen.

While batch k commits (on the writer's helper thread), batch k+1 is consumed, decoded and
predicted; it is produced once batch k's commit has settled. Under a backlog (a full batch
consumed) the decoding, prediction and formatting of a batch run on a thread of their own
("answer") while the loop produces the batch before it and consumes the one after, so the
model's computation (which releases the GIL) and the loop's waits for the broker overlap; a
batch that is not full is answered at once, so a light load waits for no next batch. Rebalance
callbacks run inside `consume()`; a revocation first settles the commit in flight and drops
the batch still being answered (its offsets were never committed: the partitions' next owner
answers it), so no transaction outlives the ownership of its partitions. Offsets travel with
the group generation (KIP-447): a replica that lost its partitions without noticing gets its
offsets refused and its transaction aborted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from numpy.typing import NDArray

from kafkaml.protocol import decode_batch, side_from_config
from kafkaml.runtime import refreeze
from model_inference.answers import Answers, Decoder, Routes, answer_batch
from model_inference.delivery import DEFAULT_DELIVERY, AtLeastOnceWriter, Delivery, DeliveryFailures
from model_inference.metrics import InferenceMetrics
from model_inference.swap import ModelSwapper, ServingModel
from model_inference.transactions import (
    BatchWriter,
    ForeignDeliveryError,
    Producers,
    retry_while_away,
)

log = logging.getLogger(__name__)

_LAG_INTERVAL_S = 1.0
# A replica fenced twice within this time yields to the other holder of its transactional id.
_FENCED_RENEWAL_INTERVAL_S = 60.0


class InferenceError(RuntimeError):
    """The inference cannot go on (fenced producer, broker refused, output undeliverable)."""


def decoder_for(input_format: str, input_config: Mapping[str, Any]) -> Decoder:
    """The protocol's batch decoder for an input format and its configuration.

    Raises InputConfigError now for an unknown format or an unusable input_config, rather
    than for every batch later.
    """
    side_from_config(input_format, input_config, "data")

    def decode(values: Sequence[bytes | None]) -> NDArray[Any]:
        x, _ = decode_batch(input_format, input_config, values)
        return x

    return decode


@dataclass(frozen=True)
class _Batch:
    """What the metrics need of a batch whose commit is in flight."""

    consumed: int
    started: float
    answers: Answers


@dataclass(frozen=True)
class _Answering:
    """A consumed batch whose answers are being computed, with what its commit needs."""

    consumed: int
    started: float
    offsets: list[TopicPartition]
    model_version: str
    answers: Future[Answers]


class InferenceService:
    """One replica's loop over its share of the input topic's partitions.

    Give it a consumer (its group is the inference's group), the producers, the routes, the
    decoder of the input format and the model to serve; `subscribe`, then `run` until a stop
    event, or call `process_batch` in a loop. `close` commits what is in flight and leaves the
    group.
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
        delivery: Delivery = DEFAULT_DELIVERY,
        delivery_failures: DeliveryFailures | None = None,
        outage_s: float = 300.0,
        renew_producer: Callable[[], Producer] | None = None,
    ) -> None:
        self._consumer = consumer
        self._writer = _writer(delivery, producers, routes, transaction_timeout_s, consumer,
                               delivery_failures, outage_s, renew_producer)  # fmt: skip
        self._outage_s = outage_s
        self._last_fenced_renewal = -_FENCED_RENEWAL_INTERVAL_S
        self._broker_trouble_at = -outage_s  # when the brokers were last seen away
        self._routes = routes
        self._decode = decode
        self._model = model
        self._swapper = swapper
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000
        self._timeout_s = transaction_timeout_s
        self.metrics = metrics or InferenceMetrics()
        self._in_flight: deque[_Batch] = deque()  # oldest first
        self._answerer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="answer")
        self._answering: _Answering | None = None  # consumed after every batch in flight
        self._next_lag = 0.0
        self._closed = False
        self._owned: list[TopicPartition] = []
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
        if self._swapper is not None:
            self._swapper.start()

    def assignment(self) -> list[TopicPartition]:
        """The input partitions this replica owns now, as its rebalance callbacks saw them.

        Safe from any thread: unlike `Consumer.assignment()`, which waits on librdkafka with
        the GIL held and, called beside a `consume()` on another thread, held up that thread's
        rebalance callbacks for minutes (two replicas in one process).
        """
        return list(self._owned)

    def run(self, stop: threading.Event) -> None:
        """Process batches until `stop` is set, then commit the batch in hand."""
        while not stop.is_set():
            self.process_batch()
        self.settle()

    def process_batch(self) -> int:
        """Consume one micro-batch, answer it, start its commit. Returns the records consumed.

        A full batch is answered on the answering thread and produced in the next call (or
        by `settle`); the batch answered before it is produced now. The commit of the previous
        batch settles before the next is produced (at-least-once: all but the writer's
        `window - 1` latest batches). When a transaction aborts, the service rewinds to the
        committed offsets and returns 0: the records come again. Raises InferenceError when it
        cannot go on, and what answering a batch raised (see `answer_batch`).
        """
        self._swap_if_due()
        messages = self._consume()
        if not messages:
            self.settle()
            self._measure_lag()
            return 0
        started = time.perf_counter()
        offsets = self._positions()
        backlog = len(messages) >= self._max_batch
        answering = self._answer(messages, started, offsets, on_thread=backlog)
        previous, self._answering = self._answering, answering
        # A rewind after a failed write drops `answering` too: its records come again.
        if previous is not None and not self._produce_answered(previous):
            return 0
        if not backlog and not self._produce_answered(self._take_answering()):
            return 0
        self._measure_lag()
        return len(messages)

    def settle(self) -> bool:
        """Produce the batch being answered, wait for the commits in flight. False when a
        transaction aborted (and the service rewound).

        Afterwards `committed_records` counts every record consumed so far. Raises what
        `process_batch` raises.
        """
        if self._answering is not None and not self._produce_answered(self._take_answering()):
            return False
        return self._settle(rewind=True)

    def close(self) -> None:
        """Commit what is in flight, stop the writer and leave the group. A batch still being
        answered is dropped (its records come again); `run` produces it before it returns."""
        if self._closed:
            return
        self._closed = True
        if self._swapper is not None:
            self._swapper.close()
        try:
            self._drop_answering()
            self._settle(rewind=False)
        finally:
            self._answerer.shutdown(wait=True, cancel_futures=True)
            self._writer.close()
            self._consumer.close()

    # -- consuming ---------------------------------------------------------------------------

    def _consume(self) -> list[Message]:
        messages = self._consumer.consume(self._max_batch, self._max_wait_s)
        good = [message for message in messages if message.error() is None]
        if len(good) != len(messages):
            for message in messages:
                error = message.error()
                if error is not None:
                    self._consumer_error(error)
        return good

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise InferenceError(f"the input consumer failed: {error}")
        self._broker_trouble_at = time.monotonic()
        log.warning("input consumer: %s", error)

    def _positions(self) -> list[TopicPartition]:
        """The offsets to commit with this batch: the next position in each owned partition."""
        positions = self._consumer.position(self._consumer.assignment())
        return [tp for tp in positions if tp.offset >= 0]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned = list(partitions)
        log.info("assigned %s", _describe(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The commit in flight still owns these partitions: let it finish first. If it aborts,
        # there is nothing to rewind: the next owner starts from the committed offsets, and
        # answers the batch still being answered here, which is dropped.
        self._owned = []
        self._drop_answering()
        self._settle(rewind=False)
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

    # -- answering --------------------------------------------------------------------------------

    def _answer(
        self,
        messages: list[Message],
        started: float,
        offsets: list[TopicPartition],
        *,
        on_thread: bool,
    ) -> _Answering:
        """Start answering a batch with the model now served: on the answering thread, or here
        (the returned future is then done)."""
        model = self._model
        args = (messages, self._decode, model.predictor, self._routes)
        answers: Future[Answers]
        if on_thread:
            answers = self._answerer.submit(answer_batch, *args)
        else:
            answers = Future()
            answers.set_result(answer_batch(*args))
        return _Answering(len(messages), started, offsets, model.version, answers)

    def _take_answering(self) -> _Answering:
        answering, self._answering = self._answering, None
        assert answering is not None
        return answering

    def _drop_answering(self) -> None:
        """Forget the batch being answered (its records come again); wait for its thread, so
        no answer of it is computed after this returns."""
        answering, self._answering = self._answering, None
        if answering is not None:
            answering.answers.cancel()
            wait([answering.answers])

    # -- producing and committing --------------------------------------------------------------

    def _produce_answered(self, batch: _Answering) -> bool:
        """Produce an answered batch and start its commit; False if a transaction aborted
        (the service rewound). Raises what answering the batch raised."""
        answers = batch.answers.result()
        if not self._settle(rewind=True, keep=self._writer.window - 1):
            return False
        if not self._write(answers, batch.model_version):
            return False
        self._writer.commit_async(batch.offsets, self._group_metadata())
        self._in_flight.append(_Batch(batch.consumed, batch.started, answers))
        return True

    def _write(self, answers: Answers, model_version: str) -> bool:
        """Open the batch's transaction and produce into it; False if it had to abort."""
        try:
            self._writer.write(answers, model_version)
        except KafkaException as exception:
            self._transaction_failed(exception, rewind=True)
            return False
        except ForeignDeliveryError as error:
            raise InferenceError(str(error)) from error
        return True

    def _group_metadata(self) -> Any:
        """What a transaction's offsets need (KIP-447); at-least-once commits without it."""
        if isinstance(self._writer, AtLeastOnceWriter):
            return None
        return self._consumer.consumer_group_metadata()

    def _settle(self, *, rewind: bool, keep: int = 0) -> bool:
        try:
            settled = self._writer.settle(keep)
        except KafkaException as exception:
            self._in_flight.clear()
            self._transaction_failed(exception, rewind=rewind)
            return False
        except ForeignDeliveryError as error:
            self._in_flight.clear()
            raise InferenceError(str(error)) from error
        for committed_at in settled:
            self._count(self._in_flight.popleft(), committed_at)
        return True

    def _count(self, batch: _Batch, committed_at: float) -> None:
        answers = batch.answers
        self.committed_records += batch.consumed
        self.metrics.latency.observe(committed_at - batch.started)
        self.metrics.record_batch(batch.consumed, len(answers.output.messages),
                                  len(answers.upper.messages), len(answers.dead))  # fmt: skip

    def _transaction_failed(self, exception: KafkaException, *, rewind: bool) -> None:
        """Abort and rewind on an abortable error; renew the producer and rewind when it timed
        out (the broker is or was away); raise InferenceError on any other."""
        error: KafkaError = exception.args[0]
        if error.txn_requires_abort():
            log.warning("aborting the transaction: %s", error)
            self.metrics.aborted.inc()
            try:
                self._writer.abort()
            except KafkaException as abort_exception:
                self._renew_or_raise(abort_exception.args[0])
        else:
            self._renew_or_raise(error)
        if rewind:
            self._rewind()

    def _renew_or_raise(self, error: KafkaError) -> None:
        if not self._writer.renewable or not (self._timed_out(error) or self._epoch_lost(error)):
            raise InferenceError(f"the transaction failed: {error}")
        self._broker_trouble_at = time.monotonic()
        log.warning("the transaction failed, renewing the producer: %s", error)
        self.metrics.aborted.inc()
        try:
            self._writer.renew()
        except KafkaException as renew_exception:
            raise InferenceError(
                f"the broker stayed away: {renew_exception.args[0]}"
            ) from renew_exception

    @staticmethod
    def _timed_out(error: KafkaError) -> bool:
        return bool(error.retriable() and not error.fatal())

    def _epoch_lost(self, error: KafkaError) -> bool:
        """Fenced after the brokers were away: the coordinator aborted a transaction that
        outlived its timeout and bumped the epoch. Fenced in a young transaction with no outage
        seen, or again soon after a renewal: another replica of the same name runs, and this
        one yields to it."""
        if error.code() != KafkaError._FENCED:
            return False
        now = time.monotonic()
        outlived = self._writer.transaction_age() > self._timeout_s
        if not outlived and now - self._broker_trouble_at > self._outage_s:
            return False
        if now - self._last_fenced_renewal < _FENCED_RENEWAL_INTERVAL_S:
            return False
        self._last_fenced_renewal = now
        return True

    def _rewind(self) -> None:
        """Go back to the committed offsets of every owned partition."""
        self._drop_answering()
        assignment = self._consumer.assignment()
        if not assignment:
            return
        committed = retry_while_away(
            "reading the committed offsets",
            lambda: self._consumer.committed(assignment, self._timeout_s),
            self._outage_s,
        )
        for tp in committed:
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
            refreeze()  # frees the old model where the collector was tuned for streaming


def _writer(
    delivery: Delivery,
    producers: Producers,
    routes: Routes,
    timeout_s: float,
    consumer: Consumer,
    failures: DeliveryFailures | None,
    outage_s: float,
    renew: Callable[[], Producer] | None,
) -> BatchWriter:
    """The writer of the delivery guarantee; at-least-once needs the producer's failures."""
    if delivery == "exactly-once":
        return BatchWriter(producers, routes, timeout_s, outage_s, renew)
    if failures is None:
        raise ValueError("an at-least-once service needs the DeliveryFailures of its producer")
    return AtLeastOnceWriter(producers, routes, timeout_s, consumer, failures)


def _describe(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
