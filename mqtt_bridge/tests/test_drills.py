"""Fault drills: Kafka stopped for 10 s mid-stream, and the bridge SIGKILLed mid-stream.

Each publishes numbered QoS 1 messages at a steady pace while the fault happens and then checks
that every number reached Kafka; duplicates are allowed (at-least-once) and counted. The Kafka
outage runs on a scratch broker of its own (never the shared one): broker.sh on free ports.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.local import BROKER_SCRIPT, LocalStackError, scratch_broker
from kafkaml.testing import broker_environment, wait_until
from mqtt_bridge.settings import RouteSpec
from mqtt_bridge.testing import Mosquitto, free_port
from mqtt_bridge.tests.conftest import (
    BridgeProcess,
    Publisher,
    TopicReader,
    bridge_process_env,
    bridge_settings,
)

MESSAGES = int(os.environ.get("KAFKAML_MQTT_DRILL_MESSAGES", "1500"))
RATE = float(os.environ.get("KAFKAML_MQTT_DRILL_RATE", "100"))  # messages per second
OUTAGE_S = 10.0


def _route(topic: str, prefix: str) -> RouteSpec:
    return RouteSpec(
        topic_filter=f"{prefix}/+",
        kafka_topic=topic,
        format="JSON",
        fields=[{"field": "seq", "type": "int64"}],  # type: ignore[list-item]
    )


def _publish_paced(publisher: Publisher, prefix: str, count: int, done: threading.Event) -> None:
    started = time.monotonic()
    infos = []
    for seq in range(count):
        infos.append(publisher.publish(f"{prefix}/car-{seq % 7}", {"seq": seq}))
        delay = started + (seq + 1) / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for info in infos:
        info.wait_for_publish(120)
    done.set()


def _warm_up(publisher: Publisher, prefix: str, reader: TopicReader) -> None:
    """Publish until one message came through: the bridge is subscribed and Kafka reachable."""

    def through() -> bool:
        publisher.publish(f"{prefix}/warm-up", {"seq": -1})
        return bool(reader.records)

    wait_until(through, "the bridge to forward a first message", timeout_s=120, interval_s=1)


def _sequence_numbers(reader: TopicReader) -> Counter[int]:
    return Counter(
        int(cast(bytes, r.value())[1:-1]) for r in reader.records if r.value() != b"[-1]"
    )


def _wait_all(reader: TopicReader, count: int, alive: Callable[[], None]) -> Counter[int]:
    def complete() -> bool:
        alive()
        return len(_sequence_numbers(reader)) >= count

    wait_until(complete, f"all {count} messages in Kafka", timeout_s=240, interval_s=0.5)
    return _sequence_numbers(reader)


@pytest.fixture
def own_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch Kafka broker on free ports: (bootstrap, broker.sh environment)."""
    port = free_port()
    directory = tmp_path / "kafka"
    # scratch_broker passes this process's environment to broker.sh.
    monkeypatch.setenv("KAFKAML_BROKER_CONTROLLER_PORT", str(free_port()))
    env = broker_environment(port, directory)
    try:
        with scratch_broker(port, directory) as bootstrap:
            yield bootstrap, env
    except LocalStackError as error:
        pytest.fail(f"could not start the scratch broker: {error}", pytrace=False)
    finally:
        subprocess.run(
            ["bash", str(BROKER_SCRIPT), "stop"], env=env, check=False, capture_output=True
        )


def _broker(command: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", str(BROKER_SCRIPT), command], env=env, text=True, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout


def _metrics(port: int) -> dict[str, float]:
    """The bridge's Prometheus samples, summed over labels, once nothing is pending."""

    def scrape() -> dict[str, float] | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                key = name.split("{")[0]
                samples[key] = samples.get(key, 0.0) + float(value)
        return samples if samples.get("kafkaml_mqtt_pending") == 0 else None

    return wait_until(scrape, "the bridge's metrics with nothing pending", timeout_s=60)


def _alive(bridge: BridgeProcess) -> Callable[[], None]:
    def check() -> None:
        if bridge.process is not None and bridge.process.poll() is not None:
            raise AssertionError(f"the bridge exited:\n{bridge.tail()}")

    return check


def test_kafka_stopped_for_ten_seconds_mid_stream_loses_no_message(
    own_broker: tuple[str, dict[str, str]], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    bootstrap, broker_env = own_broker
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic, dead_letters = f"drill-{uuid.uuid4().hex[:8]}", f"dlq-{uuid.uuid4().hex[:8]}"
    ensure_topics(make_admin(kafka), [topic, dead_letters], partitions=2)
    prefix = f"outage-{topic}"
    settings = bridge_settings(mosquitto, [_route(topic, prefix)])
    bridge = BridgeProcess(
        bridge_process_env(settings, bootstrap, dead_letters), tmp_path / "bridge.log"
    )
    publisher = Publisher(mosquitto)
    reader = TopicReader(kafka, topic)
    done = threading.Event()
    try:
        bridge.start()
        _warm_up(publisher, prefix, reader)
        pace = threading.Thread(target=_publish_paced, args=(publisher, prefix, MESSAGES, done))
        pace.start()
        wait_until(lambda: len(reader.records) > MESSAGES // 10, "the stream to flow", 120)
        _broker("stop", broker_env)
        stopped_at = len(_sequence_numbers(reader))
        time.sleep(OUTAGE_S)
        _broker("start", broker_env)
        pace.join(300)
        assert done.is_set(), "the publisher did not finish"
        seen = _wait_all(reader, MESSAGES, _alive(bridge))
    finally:
        publisher.close()
        assert bridge.stop() == 0, bridge.tail()
        reader.close()

    duplicates = sum(seen.values()) - len(seen)
    print(
        f"outage drill: {MESSAGES} messages, {stopped_at} before the stop, {duplicates} duplicates"
    )
    assert set(seen) == set(range(MESSAGES))
    assert stopped_at < MESSAGES, "the outage did not fall mid-stream"


def test_bridge_sigkilled_mid_stream_and_restarted_loses_no_message(
    mosquitto: Mosquitto,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic, dead_letters = new_topic(partitions=2), new_topic()
    prefix = f"kill-{topic}"
    # MQTT 3.1.1 here (clean_session False), MQTT 5 (session expiry) in the outage drill.
    settings = bridge_settings(mosquitto, [_route(topic, prefix)], protocol="3.1.1")
    bridge = BridgeProcess(
        {
            **bridge_process_env(settings, kafka_settings.bootstrap_servers, dead_letters),
            "KAFKAML_MQTT_METRICS_PORT": str(metrics_port := free_port()),
        },
        tmp_path / "bridge.log",
    )
    publisher = Publisher(mosquitto)
    reader = TopicReader(kafka_settings, topic)
    done = threading.Event()
    try:
        bridge.start()
        _warm_up(publisher, prefix, reader)
        pace = threading.Thread(target=_publish_paced, args=(publisher, prefix, MESSAGES, done))
        pace.start()
        for share in (4, 2):

            def past(s: int = share) -> bool:
                return len(reader.records) > MESSAGES // s

            wait_until(past, "records", 120)
            bridge.kill()
            time.sleep(1.0)  # messages keep arriving at the MQTT broker while the bridge is gone
            bridge.start()
        pace.join(300)
        assert done.is_set(), "the publisher did not finish"
        seen = _wait_all(reader, MESSAGES, _alive(bridge))
        metrics = _metrics(metrics_port)
    finally:
        publisher.close()
        assert bridge.stop() == 0, bridge.tail()
        reader.close()

    # The restarted bridge counts what it forwarded itself, resent messages among them.
    assert metrics["kafkaml_mqtt_records_out_total"] > 0
    assert metrics["kafkaml_mqtt_pending"] == 0
    duplicates = sum(seen.values()) - len(seen)
    print(f"kill drill: {MESSAGES} messages, 2 SIGKILLs, {duplicates} duplicates")
    assert bridge.starts == 3
    assert set(seen) == set(range(MESSAGES))
