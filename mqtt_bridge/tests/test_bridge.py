"""The bridge against a real Mosquitto and the real Kafka broker: mapping, keys, dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest

from kafkaml.protocol import decode_batch
from mqtt_bridge.mapping import ERROR_HEADER, TOPIC_HEADER, Route
from mqtt_bridge.settings import RouteSpec
from mqtt_bridge.tests.conftest import Publisher, RunningBridge, TopicReader

Headers = list[tuple[str, bytes]]  # what the producer set on these records
FIELDS = [
    {"field": "speed", "type": "float32", "position": 1},
    {"field": "coolant_temp", "type": "float64", "position": 0},
    {"field": "tire_pressure11", "type": "int32", "position": 2},
]
READINGS: list[tuple[str, dict[str, object]]] = [
    ("car-1", {"speed": 12.5, "coolant_temp": 80.25, "tire_pressure11": 33, "extra": "x"}),
    ("car-2", {"speed": 0, "coolant_temp": -4.0, "tire_pressure11": 21}),
    ("car-1", {"speed": 30.75, "coolant_temp": 95.5, "tire_pressure11": 32}),
]


def _route(topic: str, fmt: str, prefix: str) -> RouteSpec:
    return RouteSpec(
        topic_filter=f"{prefix}/sensor/data/+",
        kafka_topic=topic,
        format=fmt,  # type: ignore[arg-type]
        fields=FIELDS,  # type: ignore[arg-type]
        header_fields=["extra"],
    )


@pytest.mark.parametrize("fmt", ["RAW", "JSON", "AVRO"])
def test_each_format_maps_fields_to_positions_with_the_device_id_as_key(
    fmt: str,
    new_topic: Callable[..., str],
    start_bridge: Callable[..., RunningBridge],
    publisher: Publisher,
    reader_factory: Callable[[str], TopicReader],
) -> None:
    topic, dead_letters = new_topic(partitions=2), new_topic()
    prefix = f"vehicles-{topic}"
    spec = _route(topic, fmt, prefix)
    start_bridge([spec], dead_letters, protocol="5" if fmt != "RAW" else "3.1.1")
    reader = reader_factory(topic)

    for device_id, payload in READINGS:
        publisher.publish(f"{prefix}/sensor/data/{device_id}", payload).wait_for_publish(30)
    records = reader.wait_for(len(READINGS))

    by_device: dict[bytes, list[np.ndarray[Any, Any]]] = {}
    config = Route.from_spec(spec).input_config()
    for record in records:
        x, _ = decode_batch(fmt, config, [record.value()])
        key = cast(bytes, record.key())
        by_device.setdefault(key, []).append(x[0])
        headers = dict(cast(Headers, record.headers()))
        assert headers[TOPIC_HEADER] == f"{prefix}/sensor/data/{key.decode()}".encode()
    expected = {
        b"car-1": [[80.25, 12.5, 33], [95.5, 30.75, 32]],
        b"car-2": [[-4.0, 0.0, 21]],
    }
    assert by_device.keys() == expected.keys()
    for device, rows in expected.items():  # per device, Kafka keeps the order
        np.testing.assert_allclose(np.array(by_device[device], dtype=np.float64), rows)
    assert len(records) == len(READINGS)
    assert any(dict(cast(Headers, r.headers())).get("extra") == b'"x"' for r in records)


def test_bad_payloads_go_to_the_dead_letter_topic_with_the_reason_and_are_counted(
    new_topic: Callable[..., str],
    start_bridge: Callable[..., RunningBridge],
    publisher: Publisher,
    reader_factory: Callable[[str], TopicReader],
) -> None:
    topic, dead_letters = new_topic(), new_topic()
    prefix = f"vehicles-{topic}"
    running = start_bridge([_route(topic, "JSON", prefix)], dead_letters)
    good = reader_factory(topic)
    bad = reader_factory(dead_letters)
    device_topic = f"{prefix}/sensor/data/car-9"
    payloads: list[bytes | dict[str, object]] = [
        READINGS[0][1],
        b"{not json",
        {"speed": 1.0, "coolant_temp": 2.0},  # tire_pressure11 missing
        {"speed": "fast", "coolant_temp": 2.0, "tire_pressure11": 30},
        b"[1, 2, 3]",
        READINGS[1][1],
    ]
    for payload in payloads:
        publisher.publish(device_topic, payload).wait_for_publish(30)

    assert [r.value() for r in good.wait_for(2)] == [b"[80.25,12.5,33.0]", b"[-4.0,0.0,21.0]"]
    letters = bad.wait_for(4)
    reasons = [dict(cast(Headers, r.headers()))[ERROR_HEADER].decode() for r in letters]
    assert letters[0].value() == b"{not json"
    assert all(r.key() == b"car-9" for r in letters)
    assert "not JSON" in reasons[0]
    assert "'tire_pressure11' is missing" in reasons[1]
    assert "'speed' = \"fast\" is not a float32" in reasons[2]
    assert "not an object" in reasons[3]
    metrics = running.bridge.metrics.registry
    assert metrics.get_sample_value("kafkaml_mqtt_dead_letters_total", {"reason": "not_json"}) == 2
    assert metrics.get_sample_value("kafkaml_mqtt_dead_letters_total", {"reason": "field"}) == 2
    assert metrics.get_sample_value("kafkaml_mqtt_ack_lag_seconds_count") == 6
    assert running.bridge.pending() == 0
