"""The whole scenario through the platform: fleet -> MQTT -> bridge -> Kafka -> a deployment
trained incrementally by a training job on the normal stream (target "input") -> the trained
autoencoders served as inferences -> reconstructions matched to their readings -> threshold
from validation readings -> precision and recall against the simulator's ground truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from paho.mqtt.client import Client as MqttClient
from paho.mqtt.enums import CallbackAPIVersion

from examples.connected_car.detector import (
    Scaler,
    precision_recall,
    reconstruction_errors,
    threshold,
)
from examples.connected_car.models import model_code
from examples.connected_car.simulator import (
    HEALTHY,
    SENSOR_FIELDS,
    TOPIC_PREFIX,
    TRAINING_PREFIX,
    Fleet,
    bridge_route,
    features,
    mqtt_topic,
    payload,
)
from examples.platform import Platform
from kafkaml.client import Client, KafkamlError
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.local import PROJECT_ROOT
from kafkaml.protocol import ControlMessage, InputFormat
from mqtt_bridge.mapping import Route
from mqtt_bridge.settings import RouteSpec
from mqtt_bridge.testing import Mosquitto

Reading = dict[str, object]
FRAMEWORKS = ("tensorflow", "pytorch")
# Fields drawn by the web UI's regression view of each inference (reconstructed values).
SHOWN_FIELDS = ("coolant_temp", "engine_vibration_amplitude", "battery_voltage")
# Precision and recall each framework's flags reach at least, at full size and at SMALL.
BAR, SMALL_BAR = 0.8, 0.7


@dataclass(frozen=True)
class Size:
    """How much the example streams: `cars` cars, `train_steps` readings each of the healthy
    reference fleet to train on, `validation_steps` of another healthy fleet to set the
    threshold, and `test_steps` of a fleet with failures (first driven `age_steps` unseen, so
    that some have failed already) to score."""

    cars: int = 100
    train_steps: int = 300
    validation_steps: int = 50
    age_steps: int = 150
    test_steps: int = 300
    window: int = 2000
    epochs: int = 5
    stream_timeout_ms: int = 10_000  # training ends once the stream was quiet this long
    seed: int = 7


FULL = Size()
SMALL = Size(cars=40, train_steps=50, validation_steps=15, test_steps=30, window=500,
             stream_timeout_ms=5_000)  # fmt: skip


@dataclass(frozen=True)
class Scores:
    """One framework's outcome on the scored fleet."""

    framework: str
    precision: float
    recall: float
    threshold: float
    scored: int
    anomaly_share: float


def run(
    platform: Platform,
    size: Size = FULL,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    out: Callable[[str], Any] = print,
) -> list[Scores]:
    """The scenario end to end, one model per framework in one configuration; raises
    RuntimeError (or KafkamlError) when a stage does not complete."""
    training = list(Fleet(size.cars, size.seed, rates=HEALTHY).run(size.train_steps))
    scaler = Scaler.fit(features(training))
    names = {"sensor": "car-sensor", "reference": "car-reference", "dlq": "car-dead-letters"}
    topics = {role: platform.topic(name, partitions=3) for role, name in names.items()}
    routes = [bridge_route(topics["reference"], TRAINING_PREFIX), bridge_route(topics["sensor"])]
    input_config = Route.from_spec(RouteSpec.model_validate(routes[0])).input_config()
    with (
        tempfile.TemporaryDirectory() as folder,
        Mosquitto(Path(folder) / "mqtt") as mosquitto,
        _bridge(platform, mosquitto.port, routes, topics["dlq"], Path(folder)),
    ):
        _wait_bridge(platform, mosquitto.port, topics["dlq"])
        results = _train(platform, size, frameworks, scaler, topics["reference"], input_config,
                         training, mosquitto.port, out)  # fmt: skip
        return _serve_and_score(platform, size, results, scaler, topics["sensor"], input_config,
                                mosquitto.port, out)  # fmt: skip


def _train(
    platform: Platform,
    size: Size,
    frameworks: tuple[str, ...],
    scaler: Scaler,
    topic: str,
    input_config: dict[str, Any],
    training: list[Reading],
    mqtt_port: int,
    out: Callable[[str], Any],
) -> dict[str, int]:
    """One deployment (incremental, target "input") of one autoencoder per framework, trained
    on the reference fleet's readings as the bridge delivers them; {framework: result id}."""
    client = platform.client
    model_ids = []
    for framework in frameworks:
        imports, code = model_code(framework, scaler.mean, scaler.std)
        model = client.models.create(name=f"car-autoencoder-{framework}", framework=framework,
                                     imports=imports, code=code)  # fmt: skip
        model_ids.append(model.id)
    configuration = client.configurations.create(name="connected-car", model_ids=model_ids)
    options = {"window": size.window, "stream_timeout_ms": size.stream_timeout_ms}
    deployment = client.deployments.create(
        configuration.id, batch_size=64, epochs=size.epochs, mode="incremental",
        target="input", options=options, description="connected car: normal readings",
    )  # fmt: skip
    _announce(platform, deployment.id, topic, input_config)
    _publish(training, mqtt_port, TRAINING_PREFIX).join()
    out(f"published {len(training):,} readings of the healthy reference fleet")
    ids: dict[str, int] = {}
    for result_id in deployment.result_ids:
        result = client.results.wait(result_id, timeout_s=1800)
        if result.status != "finished":
            raise RuntimeError(f"training result {result_id} {result.status}: {result.error}")
        losses = [epoch["validation"].get("loss") for epoch in result.epochs or []]
        out(f"{result.framework}: {len(losses)} epochs over the windows, validation loss "
            f"{losses[0]:.3f} -> {losses[-1]:.3f}")  # fmt: skip
        ids[result.framework] = result_id
    return ids


def _announce(platform: Platform, deployment_id: int, topic: str, config: dict[str, Any]) -> None:
    """The control message of the bridged stream (an online one: the bare topic name, no end),
    sent before the first reading, as an online sink does."""
    message = ControlMessage(
        deployment_id=deployment_id, topic=topic, input_format=InputFormat.JSON,
        input_config=config, description="connected car, bridged from MQTT",
        validation_rate=0.2, test_rate=0.0, total_msg=None, incremental=True,
    )  # fmt: skip
    key, value = message.to_record()
    producer = make_producer(KafkaSettings(bootstrap_servers=platform.bootstrap_servers))
    producer.produce(platform.control_topic, value, key)
    if producer.flush(60):
        raise RuntimeError("the control message was not delivered")


def _serve_and_score(
    platform: Platform,
    size: Size,
    results: dict[str, int],
    scaler: Scaler,
    topic: str,
    input_config: dict[str, Any],
    mqtt_port: int,
    out: Callable[[str], Any],
) -> list[Scores]:
    client = platform.client
    outputs = {framework: platform.topic(f"car-reconstructions-{framework}", partitions=3)
               for framework in results}  # fmt: skip
    inferences = {
        framework: client.inferences.create(result_id, input_topic=topic,
                                            output_topic=outputs[framework],
                                            input_format="JSON", input_config=input_config).id
        for framework, result_id in results.items()
    }  # fmt: skip
    try:
        for inference_id in inferences.values():
            _visualize(client, inference_id)
            if client.inferences.wait(inference_id, timeout_s=600).status != "running":
                raise RuntimeError(f"inference {inference_id} did not start")
        validation = list(Fleet(size.cars, size.seed + 1, rates=HEALTHY).run(size.validation_steps))
        after_validation = _identity(validation[-1])[1] + 10
        scored_fleet = Fleet(size.cars, size.seed + 2, start_ts=after_validation)
        for _ in scored_fleet.run(size.age_steps):
            pass  # driven unseen: some cars have failed before scoring starts
        scored = list(scored_fleet.run(size.test_steps))
        _publish(validation + scored, mqtt_port, TOPIC_PREFIX).join()
        return [
            _score(platform, framework, outputs[framework], scaler, validation, scored, out)
            for framework in results
        ]
    finally:
        for inference_id in inferences.values():
            client.inferences.stop(inference_id)


def _score(
    platform: Platform,
    framework: str,
    output_topic: str,
    scaler: Scaler,
    validation: list[Reading],
    scored: list[Reading],
    out: Callable[[str], Any],
) -> Scores:
    """Match each reconstruction to its reading by key (car id) and timestamp header, set the
    threshold on the validation readings, flag the scored ones, compare with the truth."""
    readings = validation + scored
    answers = _reconstructions(platform, output_topic, {_identity(r) for r in readings})
    errors = reconstruction_errors(
        features(readings), np.array([answers[_identity(r)] for r in readings]), scaler
    )
    limit = threshold(errors[: len(validation)])
    flagged = errors[len(validation) :] > limit
    truth = np.array([reading["failure_occurred"] == "true" for reading in scored])
    precision, recall = precision_recall(flagged, truth)
    out(f"{framework}: threshold {limit:.3f} (99th percentile of {len(validation):,} validation "
        f"errors); scored {len(scored):,} readings, {truth.mean():.1%} from failing cars: "
        f"precision {precision:.3f}, recall {recall:.3f}")  # fmt: skip
    return Scores(framework, precision, recall, limit, len(scored), float(truth.mean()))


def _identity(reading: Reading) -> tuple[str, int]:
    return str(reading["car_id"]), int(reading["timestamp"])  # type: ignore[call-overload]


def _reconstructions(
    platform: Platform, topic: str, wanted: set[tuple[str, int]], timeout_s: float = 900
) -> dict[tuple[str, int], list[float]]:
    """Every wanted reading's reconstruction from the inference's committed outputs."""
    consumer = make_consumer(
        KafkaSettings(bootstrap_servers=platform.bootstrap_servers),
        group_id=f"connected-car-{uuid.uuid4().hex[:8]}", isolation_level="read_committed",
    )  # fmt: skip
    consumer.subscribe([topic])
    found: dict[tuple[str, int], list[float]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while not wanted.issubset(found):
            if time.monotonic() > deadline:
                missing = len(wanted - set(found))
                raise RuntimeError(f"{missing} of {len(wanted)} readings had no reconstruction")
            for record in consumer.consume(1000, 0.5):
                if record.error() is None:
                    headers = dict(record.headers() or [])
                    identity = (record.key().decode(), int(json.loads(headers["timestamp"])))
                    found[identity] = json.loads(record.value())["values"]
    finally:
        consumer.close()
    return found


def _visualize(client: Client, inference_id: int) -> None:
    """The web UI's live view of this inference: a regression chart of a few reconstructed
    fields (the inference outputs reconstructions; the per-car error is computed here)."""
    colors = ("#e4572e", "#29335c", "#669bbc")
    labels = [{"id": SENSOR_FIELDS.index(name), "color": color, "label": name}
              for name, color in zip(SHOWN_FIELDS, colors, strict=True)]  # fmt: skip
    try:
        client.inferences.visualize(inference_id, type="regression", labels=labels)
    except KafkamlError as error:
        raise RuntimeError(f"the visualization was refused: {error}") from error


@contextmanager
def _bridge(
    platform: Platform, mqtt_port: int, routes: list[dict[str, object]], dlq: str, folder: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m mqtt_bridge` with the fleet's routes, as its own process."""
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": platform.bootstrap_servers,
        "KAFKAML_MQTT_PORT": str(mqtt_port),
        "KAFKAML_MQTT_CLIENT_ID": f"connected-car-bridge-{uuid.uuid4().hex[:8]}",
        "KAFKAML_MQTT_ROUTES": json.dumps(routes),
        "KAFKAML_MQTT_DEAD_LETTER_TOPIC": dlq,
    }
    with (folder / "bridge.log").open("ab") as log:
        bridge = subprocess.Popen([sys.executable, "-m", "mqtt_bridge"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)  # fmt: skip
    try:
        yield bridge
    finally:
        bridge.terminate()
        bridge.wait(60)


def _wait_bridge(platform: Platform, mqtt_port: int, dlq: str, timeout_s: float = 120) -> None:
    """Until the bridge forwards: a reading that fits no mapping lands in the dead letters."""
    client = _mqtt_client(mqtt_port)
    consumer = make_consumer(KafkaSettings(bootstrap_servers=platform.bootstrap_servers))
    consumer.subscribe([dlq])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            client.publish(f"{TOPIC_PREFIX}/warm-up", b"{}", qos=1)
            if consumer.consume(10, 1.0):
                return
        raise RuntimeError(f"the bridge forwarded nothing within {timeout_s:.0f} s")
    finally:
        consumer.close()
        client.disconnect()
        client.loop_stop()


def _mqtt_client(mqtt_port: int) -> MqttClient:
    client = MqttClient(CallbackAPIVersion.VERSION2, client_id=f"fleet-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    return client


def _publish(readings: list[Reading], mqtt_port: int, prefix: str) -> threading.Thread:
    """Publish the readings over MQTT (QoS 1) from a thread; join it to wait for every ack."""

    def publish() -> None:
        client = _mqtt_client(mqtt_port)
        infos = [client.publish(mqtt_topic(r, prefix), payload(r), qos=1) for r in readings]
        for info in infos:
            info.wait_for_publish(600)
        client.disconnect()
        client.loop_stop()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread
