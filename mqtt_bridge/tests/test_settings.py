"""Routes from the environment, a file and the Kubernetes manifest; the CLI and the local stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kafkaml import cli
from kafkaml.local import PROJECT_ROOT, LocalSettings, _supervisor_config, programs
from mqtt_bridge.mapping import MappingError, Route, RouteConfigError
from mqtt_bridge.settings import BridgeSettings, RouteSpec

ROUTES = [
    {
        "topic_filter": "vehicles/sensor/data/+",
        "kafka_topic": "sensor-data",
        "format": "AVRO",
        "fields": [{"field": "speed"}, {"field": "car", "type": "string"}],
    }
]


def test_routes_come_from_a_json_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAML_MQTT_ROUTES", json.dumps(ROUTES))
    monkeypatch.setenv("KAFKAML_MQTT_PASSWORD", "s3cret")

    settings = BridgeSettings()

    assert settings.routes[0].fields[1].type == "string"
    assert "s3cret" not in repr(settings)


def test_routes_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "routes.json").write_text(json.dumps(ROUTES))
    monkeypatch.setenv("KAFKAML_MQTT_ROUTES_FILE", str(tmp_path / "routes.json"))

    assert BridgeSettings().routes[0].kafka_topic == "sensor-data"


def test_the_kubernetes_manifest_routes_compile() -> None:
    manifest = PROJECT_ROOT / "deploy" / "k8s" / "base" / "mqtt-bridge.yaml"
    config = next(
        doc for doc in yaml.safe_load_all(manifest.read_text()) if doc["kind"] == "ConfigMap"
    )
    routes = json.loads(config["data"]["KAFKAML_MQTT_ROUTES"])

    assert [Route.from_spec(RouteSpec.model_validate(route)) for route in routes]


def test_positions_must_cover_the_sample_once() -> None:
    spec = RouteSpec(
        topic_filter="a/+",
        kafka_topic="t",
        fields=[{"field": "x", "position": 1}, {"field": "y", "position": 1}],  # type: ignore[list-item]  # pydantic validates the dicts
    )

    with pytest.raises(RouteConfigError, match="positions"):
        Route.from_spec(spec)


def test_raw_and_json_refuse_string_fields() -> None:
    spec = RouteSpec(
        topic_filter="a/+",
        kafka_topic="t",
        format="RAW",
        fields=[{"field": "car", "type": "string"}],  # type: ignore[list-item]  # pydantic validates the dicts
    )

    with pytest.raises(RouteConfigError, match="need AVRO"):
        Route.from_spec(spec)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"x": true}', "'x' = true is not a int32"),
        (b'{"x": 1.5}', "'x' = 1.5 is not a int32"),
        (b'{"x": 4294967296}', "out of range for int32"),
        (b'{"y": 1}', "'x' is missing"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_mapping_error(payload: bytes, reason: str) -> None:
    route = Route.from_spec(
        RouteSpec(
            topic_filter="a/+",
            kafka_topic="t",
            format="RAW",
            fields=[{"field": "x", "type": "int32"}],  # type: ignore[list-item]  # pydantic validates the dicts
        )
    )

    with pytest.raises(MappingError, match=reason):
        route.map("a/dev", payload)


def test_labels_sent_as_text_map_to_booleans_and_the_device_level_is_configurable() -> None:
    route = Route.from_spec(
        RouteSpec(
            topic_filter="fleet/+/status",
            kafka_topic="t",
            format="JSON",
            device_id_level=1,
            fields=[{"field": "failed", "type": "bool"}],  # type: ignore[list-item]  # pydantic validates the dicts
        )
    )

    record = route.map("fleet/car-7/status", b'{"failed": "true"}')

    assert (record.key, record.value) == (b"car-7", b"[true]")


def test_the_local_stack_runs_the_bridge_only_when_asked(tmp_path: Path) -> None:
    plain = LocalSettings(cache_dir=tmp_path, data_dir=tmp_path / "data")
    with_bridge = plain.model_copy(update={"local_mqtt_bridge": True})

    assert "mqtt-bridge" not in [program.name for program in programs(plain)]
    bridge = next(program for program in programs(with_bridge) if program.name == "mqtt-bridge")
    assert list(bridge.command[-2:]) == ["-m", "mqtt_bridge"]
    assert "[program:mqtt-bridge]" in _supervisor_config(with_bridge, programs(with_bridge))


def test_the_cli_command_runs_the_bridge_and_fails_without_routes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKAML_MQTT_ROUTES", raising=False)
    monkeypatch.delenv("KAFKAML_MQTT_ROUTES_FILE", raising=False)

    assert cli.main(["mqtt-bridge"]) == 1
