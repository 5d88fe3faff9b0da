"""TLS and user/password: the bridge reaches a Mosquitto that demands both, and is refused
with a wrong password."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from kafkaml.kafka import KafkaSettings
from mqtt_bridge.connection import connect, make_client
from mqtt_bridge.settings import BridgeSettings, RouteSpec
from mqtt_bridge.testing import Mosquitto, make_certificates, make_password_file
from mqtt_bridge.tests.conftest import RunningBridge, TopicReader


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, Path]]:
    folder = tmp_path_factory.mktemp("secured-mosquitto")
    ca, cert, key = make_certificates(folder / "tls")
    passwords = make_password_file(folder, "bridge", "right-password")
    with Mosquitto(folder, password_file=passwords, tls=(ca, cert, key)) as broker:
        yield broker, ca


def _settings(broker: Mosquitto, ca: Path, password: str, **more: Any) -> BridgeSettings:
    return BridgeSettings(
        port=broker.port,
        tls=True,
        tls_ca_file=ca,
        username="bridge",
        password=password,  # type: ignore[arg-type]
        **more,
    )


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_a_wrong_password_is_refused(secured: tuple[Mosquitto, Path], protocol: str) -> None:
    broker, ca = secured
    client = make_client(_settings(broker, ca, "wrong", protocol=protocol))
    answered = threading.Event()
    reasons: list[Any] = []

    def on_connect(*args: Any) -> None:
        reasons.append(args[3])
        answered.set()

    client.on_connect = on_connect
    connect(client, _settings(broker, ca, "wrong", protocol=protocol))
    client.loop_start()
    try:
        assert answered.wait(30)
    finally:
        client.disconnect()
        client.loop_stop()

    assert reasons[0].is_failure


def test_the_bridge_forwards_over_tls_with_a_user_and_password(
    secured: tuple[Mosquitto, Path],
    new_topic: Callable[..., str],
    kafka_settings: KafkaSettings,
) -> None:
    broker, ca = secured
    topic, dead_letters = new_topic(), new_topic()
    route = RouteSpec(topic_filter=f"secure-{topic}/+", kafka_topic=topic, fields=[{"field": "x"}])  # type: ignore[list-item]
    bridge = RunningBridge(
        _settings(broker, ca, "right-password", routes=[route], client_id=f"tls-{topic}"),
        kafka_settings,
        dead_letters,
    )
    reader = TopicReader(kafka_settings, topic)
    publisher = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    publisher.tls_set(ca_certs=str(ca))
    publisher.username_pw_set("bridge", "right-password")
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        publisher.publish(f"secure-{topic}/dev-1", b'{"x": 2.5}', qos=1).wait_for_publish(30)
        [record] = reader.wait_for(1)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        bridge.stop()
        reader.close()

    assert (record.key(), record.value()) == (b"dev-1", b"[2.5]")
