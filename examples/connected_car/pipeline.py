"""The whole scenario on real brokers: fleet -> MQTT -> bridge -> Kafka -> incremental training on
the normal stream -> threshold from validation data -> scores of a fresh fleet -> Kafka, with
precision and recall against the simulator's ground truth."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Message
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from examples.connected_car.detector import Detector, precision_recall
from examples.connected_car.simulator import Fleet, bridge_route, mqtt_topic, payload
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer
from kafkaml.local import PROJECT_ROOT
from kafkaml.protocol import decode_batch
from mqtt_bridge.mapping import Route
from mqtt_bridge.settings import RouteSpec
from mqtt_bridge.testing import Mosquitto

VALIDATION_EVERY = 5  # every 5th normal reading is held out to set the threshold


@dataclass(frozen=True)
class RunConfig:
    bootstrap: str
    framework: str = "pytorch"
    cars: int = 100
    train_steps: int = 300
    test_steps: int = 300
    window: int = 2000
    epochs_per_window: int = 5
    batch_size: int = 64
    seed: int = 7
    mqtt_port: int | None = None  # None: start a Mosquitto of our own


@dataclass(frozen=True)
class RunResult:
    precision: float
    recall: float
    threshold: float
    trained_on: int
    scored: int
    anomaly_share: float


def run(config: RunConfig, out: Any = print) -> RunResult:
    """The scenario end to end; raises RuntimeError when a stage does not complete."""
    with tempfile.TemporaryDirectory() as folder:
        if config.mqtt_port is None:
            with Mosquitto(Path(folder) / "mosquitto") as mosquitto:
                return _run(config, mosquitto.port, Path(folder), out)
        return _run(config, config.mqtt_port, Path(folder), out)


def _run(config: RunConfig, mqtt_port: int, folder: Path, out: Any) -> RunResult:
    kafka = KafkaSettings(bootstrap_servers=config.bootstrap)
    run_id = uuid.uuid4().hex[:8]
    sensor, scores, dlq = (f"connected-car-{name}-{run_id}" for name in ("sensor", "scores", "dlq"))
    ensure_topics(make_admin(kafka), [sensor, scores, dlq], partitions=3)
    route = bridge_route(sensor)
    bridge = _start_bridge(kafka, mqtt_port, route, dlq, folder / "bridge.log")
    consumer = make_consumer(kafka)
    consumer.subscribe([sensor])
    try:
        _wait_bridge(kafka, mqtt_port, dlq)
        config_json = Route.from_spec(RouteSpec.model_validate(route)).input_config()
        detector = Detector(config.framework, config.epochs_per_window, config.batch_size)
        trained = _train(config, detector, consumer, config_json, mqtt_port, out)
        detector.save(folder / "model")
        result = _score(config, detector, consumer, config_json, mqtt_port, kafka, scores)
        result = dataclasses.replace(result, trained_on=trained)
    finally:
        consumer.close()
        bridge.terminate()
        bridge.wait(60)
    out(
        f"{config.framework}: trained on {trained:,} normal readings in windows of "
        f"{config.window}; threshold {result.threshold:.3f} ({detector.percentile:g}th "
        f"percentile of validation errors); scored {result.scored:,} readings of a fresh "
        f"fleet, {result.anomaly_share:.1%} failing: precision {result.precision:.3f}, "
        f"recall {result.recall:.3f}"
    )
    return result


def _start_bridge(
    kafka: KafkaSettings, mqtt_port: int, route: dict[str, Any], dlq: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKAML_MQTT_PORT": str(mqtt_port),
        "KAFKAML_MQTT_CLIENT_ID": f"connected-car-bridge-{uuid.uuid4().hex[:8]}",
        "KAFKAML_MQTT_ROUTES": json.dumps([route]),
        "KAFKAML_MQTT_DEAD_LETTER_TOPIC": dlq,
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "mqtt_bridge"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )


def _wait_bridge(kafka: KafkaSettings, mqtt_port: int, dlq: str, timeout_s: float = 120) -> None:
    """Until the bridge forwards: an empty reading lands in the dead-letter topic."""
    client = _publisher(mqtt_port)
    consumer = make_consumer(kafka)
    consumer.subscribe([dlq])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            client.publish("vehicles/sensor/data/warm-up", b"{}", qos=1)
            if consumer.consume(10, 1.0):
                return
        raise RuntimeError(f"the bridge forwarded nothing within {timeout_s:.0f} s")
    finally:
        consumer.close()
        client.disconnect()
        client.loop_stop()


def _publisher(mqtt_port: int) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    return client


def _publish_fleet(fleet: Fleet, steps: int, mqtt_port: int) -> threading.Thread:
    def publish() -> None:
        client = _publisher(mqtt_port)
        infos = [client.publish(mqtt_topic(r), payload(r), qos=1) for r in fleet.run(steps)]
        for info in infos:
            info.wait_for_publish(300)
        client.disconnect()
        client.loop_stop()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread


def _windows(
    consumer: Consumer, count: int, window: int, config_json: dict[str, Any], timeout_s: float = 600
) -> Iterator[tuple[np.ndarray, np.ndarray, list[Message]]]:
    """(features, failed, records) windows of the next `count` records of the sensor topic."""
    seen, held = 0, []
    deadline = time.monotonic() + timeout_s
    while seen < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {seen} of {count} readings reached Kafka")
        for record in consumer.consume(min(window - len(held), count - seen), 0.5):
            if record.error() is None:
                held.append(record)
        if held and (len(held) >= window or seen + len(held) >= count):
            x, _ = decode_batch("JSON", config_json, [r.value() for r in held])
            failed = np.array([dict(r.headers())["failure_occurred"] == b'"true"' for r in held])
            seen += len(held)
            yield x, failed, held
            held = []


def _train(
    config: RunConfig,
    detector: Detector,
    consumer: Consumer,
    config_json: dict[str, Any],
    mqtt_port: int,
    out: Any,
) -> int:
    """Train window by window on the normal readings as they arrive; then calibrate."""
    count = config.cars * config.train_steps
    publisher = _publish_fleet(Fleet(config.cars, config.seed), config.train_steps, mqtt_port)
    validation, trained = [], 0
    for x, failed, _ in _windows(consumer, count, config.window, config_json):
        normal = x[~failed]
        held_out = np.zeros(len(normal), dtype=bool)
        held_out[VALIDATION_EVERY - 1 :: VALIDATION_EVERY] = True
        validation.append(normal[held_out])
        if len(normal[~held_out]):
            detector.train_window(normal[~held_out])
            trained += int((~held_out).sum())
        out(f"  window {detector.version}: {len(x)} readings, trained on {(~held_out).sum()}")
    publisher.join()
    detector.calibrate(np.concatenate(validation))
    return trained


def _score(
    config: RunConfig,
    detector: Detector,
    consumer: Consumer,
    config_json: dict[str, Any],
    mqtt_port: int,
    kafka: KafkaSettings,
    scores_topic: str,
) -> RunResult:
    """Score a fresh fleet's readings, write one score record per reading, compare."""
    count = config.cars * config.test_steps
    publisher = _publish_fleet(Fleet(config.cars, config.seed + 1), config.test_steps, mqtt_port)
    producer = make_producer(kafka)
    flagged, truth, all_scores = [], [], []
    for x, failed, records in _windows(consumer, count, config.window, config_json):
        scores, is_anomaly = detector.flag(x)
        for record, score, anomaly in zip(records, scores, is_anomaly, strict=True):
            headers = dict(record.headers())
            value = {
                "car_id": record.key().decode(),
                "ts": json.loads(headers["timestamp"]),
                "score": round(float(score), 6),
                "is_anomaly": bool(anomaly),
                "model_version": detector.version,
            }
            producer.produce(scores_topic, json.dumps(value).encode(), record.key())
        producer.poll(0)
        flagged.append(is_anomaly)
        truth.append(failed)
        all_scores.append(scores)
    publisher.join()
    producer.flush(60)
    predicted, actual = np.concatenate(flagged), np.concatenate(truth)
    precision, recall = precision_recall(predicted, actual)
    assert detector.threshold is not None
    return RunResult(precision, recall, detector.threshold, 0, len(actual), float(actual.mean()))
