"""Replicas as real processes (`python -m model_inference`) and a read_committed output reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Message

from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.local import PROJECT_ROOT
from kafkaml.testing import WaitTimeout, wait_until


class Replica:
    """One `python -m model_inference` process of a spec-file inference, logging to a file."""

    def __init__(
        self, spec: Path, kafka_settings: KafkaSettings, name: str, log_dir: Path, **env: str
    ) -> None:
        self.name = name
        self.log = log_dir / f"replica-{name}.log"
        self._env = {
            **os.environ,
            "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "KAFKAML_INFERENCE_SPEC_FILE": str(spec),
            "KAFKAML_INFERENCE_REPLICA": name,
            "KAFKAML_INFERENCE_SESSION_TIMEOUT_MS": "6000",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model_inference"],
                env=self._env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no batch finished, no commit, no goodbye to the group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM and the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        """Make sure the process is gone (test clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# The key of the end markers `read_to_end` writes; no answer has it (answers keep input keys).
END_MARKER_KEY = b"kafkaml-test-end-marker"


class OutputReader:
    """Reads a topic read_committed on a thread, keeping every record's key and value.

    Its consumer is in a fresh private group, reading every partition from the beginning.
    """

    def __init__(self, kafka_settings: KafkaSettings, topic: str) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self._ended: set[int | None] = set()  # partitions whose end marker was read
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
                    self._ended.add(message.partition())
                else:
                    self.records.append((message.key(), message.value()))

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

    def read_to_end(self, timeout_s: float = 60) -> list[tuple[bytes | None, bytes | None]]:
        """Every record committed to the topic before this call, the end markers left out.

        Call it once nothing writes to the topic any more (every replica exited). It writes an
        end marker to each partition and waits until each was read: a partition is read in
        offset order, so every record below its marker, a late duplicate included, has been read
        by then. Raises WaitTimeout when a marker was not read within `timeout_s`.
        """
        producer = make_producer(self._kafka_settings)
        partitions = set(
            producer.list_topics(self._topic, timeout=10).topics[self._topic].partitions
        )
        for partition in partitions:
            producer.produce(self._topic, b"", END_MARKER_KEY, partition=partition)
        assert producer.flush(30) == 0, "the end markers were not delivered"
        wait_until(
            lambda: self._ended >= partitions,
            f"the end marker of each partition of {self._topic}",
            timeout_s=timeout_s,
            interval_s=0.05,
        )
        return list(self.records)
