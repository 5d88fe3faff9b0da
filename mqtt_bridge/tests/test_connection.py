"""BridgeClient's own reading against a real Mosquitto: packets that span its 64 KiB reads,
QoS 0 and 1, and MQTT 5 PUBLISHes with properties (paho's own handling) keep their order."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kafkaml.testing import wait_until
from mqtt_bridge.connection import READ_CHUNK, BridgeClient, Received, connect, make_client
from mqtt_bridge.settings import BridgeSettings
from mqtt_bridge.testing import Mosquitto

# Sizes around the read size, so packets start, end and span reads at many places.
SIZES = [10, READ_CHUNK - 7, 3, 2 * READ_CHUNK + 11, 0, 200, READ_CHUNK, 1, 70_000, 5]


class Collected:
    """What a subscribed BridgeClient handed over, in order: ("batch" | "paho", topic, payload,
    QoS); it acknowledges each."""

    def __init__(self, client: BridgeClient, topic_filter: str) -> None:
        self.items: list[tuple[str, str, bytes, int]] = []
        self.subscribed = threading.Event()
        client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_messages = self._batch
        client.on_message = self._one
        self.client = client

    def _batch(self, messages: list[Received]) -> None:
        self.items += [("batch", topic, payload, qos) for topic, payload, _, qos, _ in messages]
        self.client.ack_many([mid for _, _, mid, qos, _ in messages if qos == 1])

    def _one(self, client: Any, userdata: Any, message: MQTTMessage) -> None:
        self.items.append(("paho", message.topic, message.payload, message.qos))
        client.ack(message.mid, message.qos)


def _subscribed(mosquitto: Mosquitto, protocol: str, topic_filter: str) -> Collected:
    settings = BridgeSettings(
        port=mosquitto.port,
        protocol=protocol,  # type: ignore[arg-type]
        client_id=f"test-{uuid.uuid4().hex[:8]}",
    )
    collected = Collected(make_client(settings), topic_filter)
    connect(collected.client, settings)
    collected.client.loop_start()
    assert collected.subscribed.wait(30)
    return collected


def _publisher(mosquitto: Mosquitto, protocol: str) -> Client:
    client = Client(
        CallbackAPIVersion.VERSION2,
        protocol=MQTTProtocolVersion.MQTTv5 if protocol == "5" else MQTTProtocolVersion.MQTTv311,
    )
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    return client


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_packets_spanning_reads_arrive_whole_and_in_order(
    mosquitto: Mosquitto, protocol: str
) -> None:
    prefix = f"framing-{uuid.uuid4().hex[:8]}"
    collected = _subscribed(mosquitto, protocol, f"{prefix}/+")
    publisher = _publisher(mosquitto, protocol)
    sent = [(f"{prefix}/dev-{i}", bytes([i]) * size, i % 2) for i, size in enumerate(SIZES * 3)]
    try:
        for topic, payload, qos in sent:
            publisher.publish(topic, payload, qos=qos)
        wait_until(lambda: len(collected.items) >= len(sent), "every message", timeout_s=60)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        collected.client.disconnect()
        collected.client.loop_stop()
    assert collected.items == [("batch", *message) for message in sent]


def test_mqtt5_publishes_with_properties_go_through_paho_in_order(mosquitto: Mosquitto) -> None:
    prefix = f"properties-{uuid.uuid4().hex[:8]}"
    collected = _subscribed(mosquitto, "5", f"{prefix}/+")
    publisher = _publisher(mosquitto, "5")
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.UserProperty = [("source", "test")]
    expected = []
    try:
        for i in range(40):
            topic, payload = f"{prefix}/dev-{i % 3}", f"message {i}".encode()
            with_properties = i % 4 == 1
            publisher.publish(
                topic, payload, qos=1, properties=properties if with_properties else None
            )
            expected.append(("paho" if with_properties else "batch", topic, payload, 1))
        wait_until(lambda: len(collected.items) >= len(expected), "every message", timeout_s=60)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        collected.client.disconnect()
        collected.client.loop_stop()
    assert collected.items == expected
