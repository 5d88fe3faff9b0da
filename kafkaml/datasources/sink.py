"""The sink every format shares: send samples, then announce them with a control message.

A bounded sink measures each partition's end offset when it is created and again after the last
record is delivered; `close()` announces exactly that range. An online sink announces the bare
topic name before its first record instead. Delivery failures raise (DeliveryError); a sink
never drops a record silently, and never announces a stream that is incomplete or mixed with
records it did not write.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from tqdm import tqdm

from kafkaml.datasources.errors import DeliveryError, SinkError
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.protocol import (
    DEFAULT_CONTROL_TOPIC,
    UNLABELED_KEY,
    Codec,
    ControlMessage,
    ControlMessageError,
    EncodeError,
    InputFormat,
    Side,
    TopicRange,
    encode_deployment_id,
    format_ranges,
)
from kafkaml.protocol.sides import Role

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10_000  # samples encoded and produced per step of send_many


class KafkaMLSink:
    """Base of RawSink, AvroSink and JsonSink (and their online variants); use those.

    `bootstrap_servers` as in Kafka-ML (`boostrap_servers`, its spelling, is accepted too);
    `kafka_settings` adds TLS/SASL and is pointed at `bootstrap_servers` when both are given.
    `partition` is where samples go: 0 by default, so the announced ranges read back in the
    order sent; None lets the producer's partitioner choose by key (Kafka-ML's behaviour).
    """

    input_format: ClassVar[InputFormat]
    online: ClassVar[bool] = False

    def __init__(
        self,
        bootstrap_servers: str | None,
        topic: str | None,
        deployment_id: int | None,
        *,
        description: str = "",
        validation_rate: float = 0.0,
        test_rate: float = 0.0,
        control_topic: str = DEFAULT_CONTROL_TOPIC,
        unsupervised_topic: str | None = None,
        dataset_restrictions: Mapping[str, Any] | None = None,
        partition: int | None = 0,
        kafka_settings: KafkaSettings | None = None,
        progress: bool = True,
        flush_timeout_s: float = 120.0,
    ) -> None:
        """Connects and measures where the stream starts; see the class for the arguments.

        `flush_timeout_s` bounds every wait on the brokers (metadata, offsets, delivery).
        """
        if not topic:
            raise ValueError("a sink needs the topic to write samples to")
        if deployment_id is None:
            raise ValueError("a sink needs the deployment_id its control message is for")
        if unsupervised_topic == topic:
            raise ValueError("unlabeled samples need a topic of their own, not the labeled one")
        encode_deployment_id(deployment_id)
        _check_rates(validation_rate, test_rate)
        self.topic = topic
        self.deployment_id = deployment_id
        self.description = description
        self.validation_rate = float(validation_rate)
        self.test_rate = float(test_rate)
        self.control_topic = control_topic
        self.unsupervised_topic = unsupervised_topic
        self.dataset_restrictions = dict(dataset_restrictions or {})
        self.progress = progress
        self._partition = -1 if partition is None else partition
        self._flush_timeout_s = flush_timeout_s
        self._sides: dict[Role, Side | None] = {"data": None, "label": None}
        self._labeled: bool | None = None  # whether the stream's samples carry labels
        self._sent: dict[str, int] = {topic: 0}
        if unsupervised_topic:
            self._sent[unsupervised_topic] = 0
        self._failures: list[KafkaError] = []
        self._announced: ControlMessage | None = None
        self._closed = False
        settings = _settings(bootstrap_servers, kafka_settings)
        self._producer = make_producer(settings, delivery_report_only_error=True)
        self._watcher: Consumer = make_consumer(settings)
        self._start = {} if self.online else {name: self._high_offsets(name) for name in self._sent}

    # -- what a producer calls -------------------------------------------------------------

    def send(self, data: Any, label: Any = None) -> None:
        """Send one sample, with its label or, for a stream without labels (a model trained
        with target "input"), none. Raises EncodeError if it does not fit the stream's format,
        SinkError if the stream so far was the other kind."""
        self._check_labeled(label is not None)
        self._send_batch(self.topic, _one(data), None if label is None else _one(label))

    def send_many(self, data: Any, labels: Any = None, *, chunk_size: int = CHUNK_SIZE) -> None:
        """Send many samples: arrays (first axis = samples), DataFrames, or record lists, with
        as many labels, or none for a stream without labels (see `send`)."""
        self._check_labeled(labels is not None)
        samples = _batch(data)
        targets = None if labels is None else _batch(labels)
        if targets is not None and len(samples) != len(targets):
            raise EncodeError(f"{len(samples)} samples but {len(targets)} labels")
        for start in self._chunks(len(samples), chunk_size, self.topic):
            end = start + chunk_size
            self._send_batch(
                self.topic, samples[start:end], None if targets is None else targets[start:end]
            )

    def send_unlabeled(self, data: Any) -> None:
        """Send one sample without a label to the unsupervised topic."""
        self._send_batch(self._unlabeled_topic(), _one(data), None)

    def send_many_unlabeled(self, data: Any, *, chunk_size: int = CHUNK_SIZE) -> None:
        """Send many samples without labels to the unsupervised topic."""
        topic = self._unlabeled_topic()
        samples = _batch(data)
        for start in self._chunks(len(samples), chunk_size, topic):
            self._send_batch(topic, samples[start : start + chunk_size], None)

    def close(self) -> ControlMessage:
        """Deliver every record, then announce them; returns the control message sent.

        Raises DeliveryError if a record was not delivered and SinkError if nothing was sent
        or the topic holds records this sink did not write in its ranges; then nothing is
        announced. Closing twice returns the same message.
        """
        if self._closed:
            if self._announced is None:
                raise SinkError("this sink was closed without announcing a stream")
            return self._announced
        self._closed = True
        try:
            self._flush()
            if self._announced is None:
                self._announce(self._bounded_message())
            return self._announced  # type: ignore[return-value]  # set by _announce
        finally:
            self._watcher.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()

    @property
    def input_config(self) -> dict[str, Any]:
        """The input_config announced (known once a sample of each side was seen or given)."""
        return self._codec().input_config()

    # -- what each format provides ---------------------------------------------------------

    def _infer_side(self, role: Role, sample: Any) -> Side:
        """The side for `role` from its first sample, honouring what the constructor was given."""
        raise NotImplementedError

    # -- internals ---------------------------------------------------------------------------

    def _send_batch(self, topic: str, samples: Any, labels: Any | None) -> None:
        if self._closed:
            raise SinkError("this sink is closed")
        if len(samples) == 0:
            return
        values = self._side("data", samples[0]).encode(samples, "data")
        if labels is None:
            keys: list[bytes] = [UNLABELED_KEY] * len(values)
        else:
            keys = self._side("label", labels[0]).encode(labels, "label")
        if self.online and self._announced is None:
            self._announce(self._online_message())
        self._produce(topic, values, keys)

    def _check_labeled(self, labeled: bool) -> None:
        """A stream's samples all carry labels or none does (its input_config says which)."""
        if self._labeled is None:
            self._labeled = labeled
        elif self._labeled != labeled:
            kind = "with" if self._labeled else "without"
            raise SinkError(f"this stream's samples were sent {kind} labels: keep to one kind")

    def _side(self, role: Role, sample: Any) -> Side:
        side = self._sides[role]
        if side is None:
            side = self._sides[role] = self._infer_side(role, sample)
        return side

    def _codec(self) -> Codec:
        data, label = self._sides["data"], self._sides["label"]
        if data is not None and self._labeled is False:
            return Codec(self.input_format, data, None)  # a stream without labels
        if data is None or label is None:
            missing = "data" if data is None else "label"
            raise SinkError(
                f"the {missing} format is not known yet: give its type in the constructor or "
                "send a labeled sample first"
            )
        return Codec(self.input_format, data, label)

    def _produce(self, topic: str, values: list[bytes], keys: list[bytes]) -> None:
        produce, report, partition = self._producer.produce, self._on_delivery, self._partition
        try:
            for value, key in zip(values, keys, strict=True):
                try:
                    produce(topic, value, key, partition, on_delivery=report)
                except BufferError:  # the local queue is full
                    self._produce_when_room(topic, value, key)
        except KafkaException as error:
            raise DeliveryError(f"the producer refused a record for {topic}: {error}") from None
        self._producer.poll(0)
        self._sent[topic] += len(values)
        self._raise_failures()

    def _produce_when_room(self, topic: str, value: bytes, key: bytes) -> None:
        """Serve delivery reports until the queue takes the record."""
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(
                    topic, value, key, self._partition, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                continue

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:  # only failures are reported (delivery.report.only.error)
            self._failures.append(error)

    def _raise_failures(self) -> None:
        if self._failures:
            raise DeliveryError(
                f"{len(self._failures)} records were not delivered; first: {self._failures[0]}"
            )

    def _flush(self) -> None:
        left = self._producer.flush(self._flush_timeout_s)
        if left:
            raise DeliveryError(
                f"{left} records were still undelivered after {self._flush_timeout_s} s"
            )
        self._raise_failures()

    def _announce(self, message: ControlMessage) -> None:
        key, value = message.to_record()
        self._producer.produce(self.control_topic, value, key, on_delivery=self._on_delivery)
        self._flush()
        self._announced = message
        logger.info("announced %s on %s", message.topic, self.control_topic)

    def _bounded_message(self) -> ControlMessage:
        if self._sent[self.topic] == 0:
            raise SinkError(f"no sample was sent to {self.topic}; nothing to announce")
        ranges = self._written_ranges(self.topic)
        unlabeled = self.unsupervised_topic
        announce_unlabeled = bool(unlabeled and self._sent[unlabeled])
        return ControlMessage(
            deployment_id=self.deployment_id,
            topic=format_ranges(ranges),
            input_format=self.input_format,
            input_config=self.input_config,
            description=self.description,
            validation_rate=self.validation_rate,
            test_rate=self.test_rate,
            total_msg=self._sent[self.topic],
            incremental=False,
            unsupervised_topic=(
                format_ranges(self._written_ranges(unlabeled))
                if unlabeled and announce_unlabeled
                else None
            ),
            dataset_restrictions=self.dataset_restrictions,
        )

    def _online_message(self) -> ControlMessage:
        return ControlMessage(
            deployment_id=self.deployment_id,
            topic=self.topic,
            input_format=self.input_format,
            input_config=self.input_config,
            description=self.description,
            validation_rate=self.validation_rate,
            test_rate=0.0,
            total_msg=None,
            incremental=True,
            unsupervised_topic=self.unsupervised_topic or None,
            dataset_restrictions=self.dataset_restrictions,
        )

    def _written_ranges(self, topic: str) -> list[TopicRange]:
        """Each partition's range from the sink's start to now; checks it holds only ours."""
        start, end = self._start[topic], self._end_offsets(topic)
        ranges = [
            TopicRange(topic, partition, start.get(partition, low), high)
            for partition, (low, high) in sorted(end.items())
        ]
        written = sum(topic_range.size for topic_range in ranges)
        if written != self._sent[topic]:
            raise SinkError(
                f"{topic} grew by {written} records while this sink sent {self._sent[topic]}: "
                "another producer wrote to it, so its ranges cannot be announced"
            )
        return ranges

    def _high_offsets(self, topic: str) -> dict[int, int]:
        return {partition: high for partition, (_, high) in self._end_offsets(topic).items()}

    def _end_offsets(self, topic: str) -> dict[int, tuple[int, int]]:
        """Each partition's (low, high) watermark; empty for a topic that does not exist yet."""
        try:
            metadata = self._watcher.list_topics(topic, timeout=self._flush_timeout_s)
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                return {}
            return {
                partition: self._watcher.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._flush_timeout_s
                )
                for partition in described.partitions
            }
        except KafkaException as error:
            raise SinkError(
                f"cannot read the offsets of {topic} from the brokers: {error}"
            ) from None

    def _unlabeled_topic(self) -> str:
        if not self.unsupervised_topic:
            raise SinkError("give unsupervised_topic to the sink to send unlabeled samples")
        return self.unsupervised_topic

    def _chunks(self, count: int, chunk_size: int, topic: str) -> Iterator[int]:
        with tqdm(total=count, unit="sample", desc=topic, disable=not self.progress) as bar:
            for start in range(0, count, chunk_size):
                yield start
                bar.update(min(chunk_size, count - start))

    def _abandon(self) -> None:
        """Stop after an error in the caller: queued records are dropped and nothing announced."""
        if self._closed:
            return
        self._closed = True
        self._producer.purge(in_queue=True, in_flight=False)
        self._producer.flush(self._flush_timeout_s)
        self._watcher.close()


def _settings(bootstrap_servers: str | None, given: KafkaSettings | None) -> KafkaSettings:
    if given is not None:
        return given.with_bootstrap(bootstrap_servers)
    if not bootstrap_servers:
        raise ValueError("a sink needs bootstrap_servers or kafka_settings")
    return KafkaSettings(bootstrap_servers=bootstrap_servers)


def _check_rates(validation_rate: float, test_rate: float) -> None:
    for name, rate in (("validation_rate", validation_rate), ("test_rate", test_rate)):
        if not 0 <= rate < 1:
            raise ControlMessageError(f"{name} is {rate}, not in [0, 1)")
    if validation_rate + test_rate >= 1:
        raise ControlMessageError("validation_rate plus test_rate leaves no samples for training")


def _one(sample: Any) -> Any:
    """A batch holding only `sample`."""
    if isinstance(sample, Mapping):
        return [sample]
    return np.asarray(sample)[np.newaxis]


def _batch(samples: Any) -> Any:
    """`samples` as something that slices into batches: an array, or a list of records."""
    if hasattr(samples, "to_numpy"):  # pandas DataFrame or Series
        return samples.to_numpy()
    if isinstance(samples, Sequence) and samples and isinstance(samples[0], Mapping):
        return list(samples)
    return np.asarray(samples)
