"""Settings of the MQTT bridge (`KAFKAML_MQTT_` environment names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config

FieldType = Literal["float32", "float64", "int32", "int64", "bool", "string"]


class FieldSpec(BaseModel):
    """One JSON payload field and where it goes in the Kafka record's sample."""

    field: str
    type: FieldType = "float32"
    # Index in the sample (RAW/JSON array) or in the Avro record; default: order in the list.
    position: int | None = None


class RouteSpec(BaseModel):
    """An MQTT topic filter, the Kafka topic its messages go to, and how payloads are mapped."""

    topic_filter: str
    kafka_topic: str
    format: Literal["RAW", "JSON", "AVRO"] = "JSON"
    fields: list[FieldSpec]
    # Which level of the MQTT topic holds the device id (Python index: -1 is the last level).
    device_id_level: int = -1
    # RAW and JSON: the sample's dtype; default the smallest that holds every field's type.
    data_type: str | None = None
    # Payload fields copied, as JSON text, into Kafka headers of the same name (labels, times).
    header_fields: list[str] = Field(default_factory=list)
    # AVRO: the record name of the generated schema.
    record_name: str = "Sample"


class BridgeSettings(BaseSettings):
    """Where the bridge reads MQTT, how it maps messages, where dead letters and metrics go."""

    model_config = env_config("KAFKAML_MQTT_")

    host: str = Field(default="127.0.0.1", description="Host name of the MQTT broker.")
    port: int = Field(default=1883, description="Port of the MQTT broker (8883 for TLS).")
    protocol: Literal["3.1.1", "5"] = Field(
        default="5", description="MQTT protocol version the bridge speaks: 3.1.1 or 5."
    )
    client_id: str = Field(
        default="kafkaml-mqtt-bridge",
        description="MQTT client id; stable, so the broker keeps the bridge's session.",
    )
    session_expiry_s: int = Field(
        default=86_400,
        description="MQTT 5 session expiry: how long the broker queues messages while away.",
    )
    keepalive_s: int = Field(default=30, description="MQTT keep-alive interval in seconds.")
    username: str | None = Field(default=None, description="MQTT user name.")
    password: SecretStr | None = Field(default=None, description="MQTT password.")
    tls: bool = Field(default=False, description="Connect to the MQTT broker over TLS.")
    tls_ca_file: Path | None = Field(
        default=None, description="CA certificate for the MQTT broker (default: system CAs)."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="Client certificate for mutual TLS with the MQTT broker."
    )
    tls_key_file: Path | None = Field(
        default=None, description="Client private key for mutual TLS with the MQTT broker."
    )
    routes: list[RouteSpec] = Field(
        default=[],
        description="Routes as a JSON list (topic_filter, kafka_topic, format, fields, ...).",
    )
    routes_file: Path | None = Field(
        default=None, description="JSON file holding the routes (instead of KAFKAML_MQTT_ROUTES)."
    )
    dead_letter_topic: str = Field(
        default="kafkaml-mqtt-dead-letters",
        description="Kafka topic for MQTT payloads that do not fit their route's mapping.",
    )
    metrics_port: int | None = Field(
        default=None, description="Port of the bridge's Prometheus metrics (unset: none)."
    )
    linger_ms: int = Field(
        default=5, description="Kafka producer linger of the bridge, in milliseconds."
    )
    batch_interval_ms: float = Field(
        default=10,
        gt=0,
        description="While messages wait for Kafka, how often the bridge takes in what arrived "
        "and acknowledges, in ms (longer: less CPU per message, more latency).",
    )

    @model_validator(mode="after")
    def _load_routes_file(self) -> BridgeSettings:
        if self.routes_file is not None and not self.routes:
            text = self.routes_file.read_text()
            self.routes = [RouteSpec.model_validate(item) for item in _json_list(text)]
        return self


def _json_list(text: str) -> list[object]:
    loaded = json.loads(text)
    if not isinstance(loaded, list):
        raise ValueError("the routes file must hold a JSON list of routes")
    return loaded
