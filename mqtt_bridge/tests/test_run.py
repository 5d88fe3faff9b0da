"""`Bridge.run`'s one thread against a real Mosquitto and Kafka: it reconnects to a restarted
MQTT broker, acknowledges everything before it disconnects on stop, and holds records back in
order while the producer's queue is full."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.testing import wait_until
from mqtt_bridge.producer import make_bridge_producer
from mqtt_bridge.settings import RouteSpec
from mqtt_bridge.testing import Mosquitto
from mqtt_bridge.tests.conftest import (
    Publisher,
    RunningBridge,
    TopicReader,
    bridge_settings,
)


def _route(topic: str, prefix: str) -> RouteSpec:
    return RouteSpec(
        topic_filter=f"{prefix}/+",
        kafka_topic=topic,
        fields=[{"field": "seq", "type": "int64"}],  # type: ignore[list-item]
    )


def _values(reader: TopicReader) -> list[bytes]:
    return [cast(bytes, record.value()) for record in reader.records]


def test_the_bridge_reconnects_to_a_restarted_mqtt_broker_and_subscribes_again(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    reader_factory: Callable[[str], TopicReader],
) -> None:
    topic, dead_letters = new_topic(), new_topic()
    prefix = f"restart-{topic}"
    broker = Mosquitto(tmp_path / "first").start()
    bridge = RunningBridge(
        bridge_settings(broker, [_route(topic, prefix)]), kafka_settings, dead_letters
    )
    reader = reader_factory(topic)
    try:
        publisher = Publisher(broker)
        publisher.publish(f"{prefix}/car-1", {"seq": 1}).wait_for_publish(30)
        publisher.close()
        reader.wait_for(1)
        bridge.subscribed.clear()
        broker.stop()  # no persistence: the new broker knows no session or subscription
        broker = Mosquitto(tmp_path / "second", port=broker.port).start()
        assert bridge.subscribed.wait(60), "the bridge did not subscribe to the new broker"
        publisher = Publisher(broker)
        publisher.publish(f"{prefix}/car-1", {"seq": 2}).wait_for_publish(30)
        publisher.close()
        reader.wait_for(2)
    finally:
        bridge.stop()
        broker.stop()

    assert _values(reader) == [b"[1]", b"[2]"]


class _Session:
    """A plain paho client that takes over the bridge's persistent session (same client id,
    no clean start) and records what the broker sends it."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.topics: list[str] = []
        self.connected = threading.Event()
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port, clean_start=False)
        self.client.loop_start()

    def _message(self, client: Any, userdata: Any, message: MQTTMessage) -> None:
        self.topics.append(message.topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_stopped_bridge_has_acknowledged_every_message_it_forwarded(
    mosquitto: Mosquitto,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    publisher: Publisher,
    reader_factory: Callable[[str], TopicReader],
) -> None:
    topic, dead_letters = new_topic(), new_topic()
    prefix = f"stop-{topic}"
    settings = bridge_settings(mosquitto, [_route(topic, prefix)])
    # Records held a second before they are sent: on stop, the messages still wait for Kafka.
    producer = make_bridge_producer(kafka_settings, linger_ms=1000)
    bridge = RunningBridge(settings, kafka_settings, dead_letters, producer=producer)
    reader = reader_factory(topic)
    infos = [publisher.publish(f"{prefix}/car-{seq % 3}", {"seq": seq}) for seq in range(300)]
    for info in infos:
        info.wait_for_publish(30)
    metrics = bridge.bridge.metrics.registry
    wait_until(
        lambda: (
            metrics.get_sample_value("kafkaml_mqtt_messages_in_total", {"route": f"{prefix}/+"})
            == 300
        ),
        "the bridge to take every message in",
    )
    bridge.stop()  # it waits for Kafka's confirmations, acknowledges, disconnects
    assert bridge.bridge.pending() == 0
    assert len(reader.wait_for(300)) == 300

    # The broker resends what a session did not acknowledge as soon as it is taken over, before
    # anything newer: when the marker published after the takeover arrives first, nothing was.
    session = _Session(mosquitto, settings.client_id)
    try:
        assert session.connected.wait(30)
        publisher.publish(f"{prefix}/marker", {"seq": -1}).wait_for_publish(30)
        wait_until(lambda: session.topics, "the marker", timeout_s=30)
    finally:
        session.close()
    assert session.topics[0] == f"{prefix}/marker"


def test_records_wait_in_order_while_the_producer_queue_is_full(
    mosquitto: Mosquitto,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    publisher: Publisher,
    reader_factory: Callable[[str], TopicReader],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic, dead_letters = new_topic(partitions=2), new_topic()
    prefix = f"full-{topic}"
    # Room for 5 records, each held 200 ms before it is sent: a burst fills the queue at once.
    producer = make_producer(
        kafka_settings, linger_ms=200, message_timeout_ms=0, queue_buffering_max_messages=5
    )
    caplog.set_level(logging.INFO, logger="mqtt_bridge.bridge")
    bridge = RunningBridge(
        bridge_settings(mosquitto, [_route(topic, prefix)]),
        kafka_settings,
        dead_letters,
        producer=producer,
    )
    reader = reader_factory(topic)
    count = 60
    infos = [publisher.publish(f"{prefix}/car-{seq % 2}", {"seq": seq}) for seq in range(count)]
    for info in infos:
        info.wait_for_publish(30)
    reader.wait_for(count)
    wait_until(lambda: bridge.bridge.pending() == 0, "every message acknowledged", 30)
    bridge.stop()

    by_device: dict[bytes, list[int]] = {}
    for record in reader.records:
        by_device.setdefault(cast(bytes, record.key()), []).append(
            int(cast(bytes, record.value())[1:-1])
        )
    assert by_device == {
        b"car-0": list(range(0, count, 2)),
        b"car-1": list(range(1, count, 2)),
    }
    assert any("producer's queue is full" in r.getMessage() for r in caplog.records)
