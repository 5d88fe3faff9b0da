"""Fixtures of the bridge tests: a real Mosquitto, a bridge in this process or as a process,
publishers, and a reader of Kafka topics."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message, Producer
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from kafkaml.kafka import KafkaSettings, make_consumer
from kafkaml.local import PROJECT_ROOT
from kafkaml.testing import WaitTimeout, wait_until
from mqtt_bridge.bridge import Bridge
from mqtt_bridge.connection import connect, make_client
from mqtt_bridge.mapping import Route
from mqtt_bridge.producer import make_bridge_producer
from mqtt_bridge.settings import BridgeSettings, RouteSpec
from mqtt_bridge.testing import Mosquitto, mosquitto_binary


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A Mosquitto broker on a free port for the whole session."""
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto", pytrace=False)
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


def bridge_settings(mosquitto: Mosquitto, routes: list[RouteSpec], **more: Any) -> BridgeSettings:
    return BridgeSettings(
        host="127.0.0.1",
        port=mosquitto.port,
        client_id=f"test-bridge-{uuid.uuid4().hex[:8]}",
        routes=routes,
        **more,
    )


class RunningBridge:
    """A bridge on a thread of this process (`Bridge.run`, which drives the MQTT client)."""

    def __init__(
        self,
        settings: BridgeSettings,
        kafka: KafkaSettings,
        dead_letters: str,
        producer: Producer | None = None,
    ) -> None:
        self.client = make_client(settings)
        producer = producer or make_bridge_producer(kafka, settings.linger_ms)
        routes = [Route.from_spec(spec) for spec in settings.routes]
        self.bridge = Bridge(routes, producer, dead_letters, self.client)
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        connect(self.client, settings)
        self._thread.start()
        if not self.subscribed.wait(30):
            raise WaitTimeout("the bridge's MQTT subscription", 30)

    def _run(self) -> None:
        try:
            self.bridge.run(self._stop)
        except BaseException as error:  # the test that stops the bridge sees it
            self.error = error
            raise

    def stop(self) -> None:
        """Stop the bridge (it confirms and acknowledges what it took in); raises what `run`
        raised."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the bridge did not stop within 60 s"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_bridge(
    mosquitto: Mosquitto, kafka_settings: KafkaSettings
) -> Iterator[Callable[..., RunningBridge]]:
    bridges: list[RunningBridge] = []

    def start(routes: list[RouteSpec], dead_letters: str, **more: Any) -> RunningBridge:
        bridge = RunningBridge(
            bridge_settings(mosquitto, routes, **more), kafka_settings, dead_letters
        )
        bridges.append(bridge)
        return bridge

    yield start
    for bridge in bridges:
        bridge.stop()


class BridgeProcess:
    """`python -m mqtt_bridge` as a child process, configured through its environment."""

    process: subprocess.Popen[bytes] | None

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.process = env, log, None
        self.starts = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mqtt_bridge"],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def bridge_process_env(
    settings: BridgeSettings, bootstrap: str, dead_letters: str
) -> dict[str, str]:
    routes = json.dumps([route.model_dump() for route in settings.routes])
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKAML_MQTT_HOST": settings.host,
        "KAFKAML_MQTT_PORT": str(settings.port),
        "KAFKAML_MQTT_PROTOCOL": settings.protocol,
        "KAFKAML_MQTT_CLIENT_ID": settings.client_id,
        "KAFKAML_MQTT_ROUTES": routes,
        "KAFKAML_MQTT_DEAD_LETTER_TOPIC": dead_letters,
    }


class Publisher:
    """A QoS 1 MQTT publisher that waits for each PUBACK batch."""

    def __init__(self, mosquitto: Mosquitto, protocol: str = "5") -> None:
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-publisher-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5
            if protocol == "5"
            else MQTTProtocolVersion.MQTTv311,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str | dict[str, Any]) -> Any:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto)
    yield pub
    pub.close()


_QUIET = logging.getLogger("mqtt_bridge.tests.reader")
_QUIET.setLevel(logging.CRITICAL)


class TopicReader:
    """Reads a topic from the beginning on a thread, keeping every record once.

    A consumer that rejoins its group (after a broker restart) may read records again: each
    (partition, offset) is kept once, so what is counted twice was written twice.
    """

    def __init__(self, kafka_settings: KafkaSettings, topic: str) -> None:
        self.records: list[Message] = []
        self._offsets: set[tuple[int | None, int | None]] = set()
        # A stopped broker (the outage drill) is expected, not worth a log line per retry.
        self._consumer = make_consumer(kafka_settings, session_timeout_ms=6000, logger=_QUIET)
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(10_000, 0.2):
                where = (message.partition(), message.offset())
                if message.error() is None and where not in self._offsets:
                    self._offsets.add(where)
                    self.records.append(message)

    def wait_for(self, count: int, timeout_s: float = 120.0) -> list[Message]:
        wait_until(lambda: len(self.records) >= count, f"{count} records", timeout_s)
        return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()


@pytest.fixture
def reader_factory(kafka_settings: KafkaSettings) -> Iterator[Callable[[str], TopicReader]]:
    readers: list[TopicReader] = []

    def create(topic: str, settings: KafkaSettings | None = None) -> TopicReader:
        reader = TopicReader(settings or kafka_settings, topic)
        readers.append(reader)
        return reader

    yield create
    for reader in readers:
        reader.close()
