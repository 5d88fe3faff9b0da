"""A read_committed reader of an output topic that reads it to the end: up to end markers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from confluent_kafka import Message

from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.testing import WaitTimeout, wait_until

# The key of the end markers `read_to_end` writes; no answer has it (answers keep input keys).
END_MARKER_KEY = b"kafkaml-test-end-marker"


class OutputReader:
    """Reads a topic read_committed on a thread, keeping every record but the end markers.

    Its consumer is in a fresh private group, reading every partition from the beginning.
    """

    def __init__(self, kafka_settings: KafkaSettings, topic: str) -> None:
        self.records: list[Message] = []
        self._ended: dict[bytes | None, set[int | None]] = {}  # marker value -> its partitions read
        self._kafka_settings, self._topic = kafka_settings, topic
        self._consumer = make_consumer(kafka_settings, isolation_level="read_committed")
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> OutputReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()

    def _read(self) -> None:
        while not self._stop.is_set():
            batch: list[Message] = self._consumer.consume(10_000, 0.2)
            for message in batch:
                if message.error() is not None:
                    continue
                if message.key() == END_MARKER_KEY:
                    self._ended.setdefault(message.value(), set()).add(message.partition())
                else:
                    self.records.append(message)

    def wait_for(
        self, count: int, timeout_s: float, alive: Callable[[], None] | None = None
    ) -> None:
        """Wait until `count` records were read; `alive` may raise to stop early.

        Raises WaitTimeout, noting how many records were read, at the deadline.
        """

        def enough() -> bool:
            if alive is not None:
                alive()
            return len(self.records) >= count

        try:
            wait_until(enough, f"{count} records", timeout_s=timeout_s, interval_s=0.05)
        except WaitTimeout as timeout:
            timeout.add_note(f"read {len(self.records)} of {count} records")
            raise

    def read_to_end(self, timeout_s: float = 60) -> list[Message]:
        """Every record committed to the topic before this call, the end markers left out.

        Call it once nothing writes to the topic any more (every replica exited or closed). It
        writes an end marker to each partition and waits until each was read: a partition is
        read in offset order, so every record below its marker, a late duplicate included, has
        been read by then. Each call's markers carry their own value, so a later call waits for
        its own, not for the markers an earlier call left in the topic. Raises WaitTimeout when
        a marker was not read within `timeout_s`.
        """
        marker = uuid.uuid4().hex.encode()
        producer = make_producer(self._kafka_settings)
        partitions = set(
            producer.list_topics(self._topic, timeout=10).topics[self._topic].partitions
        )
        for partition in partitions:
            producer.produce(self._topic, marker, END_MARKER_KEY, partition=partition)
        assert producer.flush(30) == 0, "the end markers were not delivered"
        wait_until(
            lambda: self._ended.get(marker, set()) >= partitions,
            f"the end marker of each partition of {self._topic}",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        return list(self.records)


def read_committed(
    kafka_settings: KafkaSettings, topic: str, timeout_s: float = 60
) -> list[Message]:
    """Every record of `topic` a read_committed consumer sees, read to end markers.

    As `OutputReader.read_to_end`: call it once nothing writes to the topic any more (the
    services closed, the replicas exited), so a surplus record (a duplicate) is in the answer.
    """
    with OutputReader(kafka_settings, topic) as reader:
        return reader.read_to_end(timeout_s)
