"""A route's mapping: an MQTT message (topic, JSON payload) -> a Kafka record (key, value, headers).

The value is written with the wire formats of `kafkaml.protocol` (RAW, JSON, AVRO), so training
jobs and inference services read the bridged stream like any sink's; `Route.input_config()` is
what a control message announces for it. The key is the device id taken from the MQTT topic.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
from paho.mqtt.client import topic_matches_sub

from kafkaml.protocol import Codec, EncodeError, InputFormat, Side, side_from_config
from mqtt_bridge.settings import FieldSpec, RouteSpec

TOPIC_HEADER = "mqtt_topic"
ERROR_HEADER = "kafkaml_error"
ROUTE_HEADER = "kafkaml_route"
_AVRO_TYPES = {
    "float32": "float",
    "float64": "double",
    "int32": "int",
    "int64": "long",
    "bool": "boolean",
    "string": "string",
}
# The JSON value types a field of each type takes as it is (ints need their range checked).
_JSON_TYPES: dict[str, frozenset[type]] = {
    "float32": frozenset({float, int}),
    "float64": frozenset({float, int}),
    "int32": frozenset(),
    "int64": frozenset(),
    "bool": frozenset({bool}),
    "string": frozenset({str}),
}
_ENCODE_ERRORS = (EncodeError, OverflowError, ValueError, TypeError)
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
TOPIC_CACHE = 100_000  # MQTT topics whose device id is remembered, per route


class MappingError(ValueError):
    """A payload does not fit its route's mapping; the message says which field and why."""


class RouteConfigError(ValueError):
    """A route cannot be built from its settings; the message names the route."""


class KafkaRecord(NamedTuple):
    """What the bridge produces for one MQTT message."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class Route:
    """A compiled RouteSpec: the fields in sample order and the codec of the sample side."""

    spec: RouteSpec
    fields: tuple[FieldSpec, ...]
    side: Side
    dtype: np.dtype[Any] | None  # RAW/JSON: the sample's dtype; AVRO: None (records)

    @classmethod
    def from_spec(cls, spec: RouteSpec) -> Route:
        """Raises RouteConfigError for positions that are not 0..n-1 or types the format lacks."""
        fields = _ordered(spec)
        input_format = InputFormat(spec.format)
        if input_format is InputFormat.AVRO:
            schema = {
                "type": "record",
                "name": spec.record_name,
                "fields": [{"name": f.field, "type": _AVRO_TYPES[f.type]} for f in fields],
            }
            side = side_from_config(input_format, {"data_scheme": json.dumps(schema)}, "data")
            return cls(spec, fields, side, None)
        if any(f.type == "string" for f in fields):
            raise RouteConfigError(
                f"route {spec.topic_filter!r}: {spec.format} samples are numbers; "
                "string fields need AVRO"
            )
        dtype = np.dtype(spec.data_type) if spec.data_type else _common_dtype(fields)
        config = {"data_type": dtype.name, "data_reshape": str(len(fields))}
        return cls(spec, fields, side_from_config(input_format, config, "data"), dtype)

    @property
    def kafka_topic(self) -> str:
        return self.spec.kafka_topic

    def matches(self, mqtt_topic: str) -> bool:
        return bool(topic_matches_sub(self.spec.topic_filter, mqtt_topic))

    def codec(self) -> Codec:
        """The codec of this route's records (no label side: the key is the device id)."""
        return Codec(InputFormat(self.spec.format), self.side, None)

    def input_config(self) -> dict[str, Any]:
        """The input_config that announces this route's Kafka topic in a control message."""
        return self.codec().input_config()

    def _topic_keys(self, mqtt_topic: str) -> tuple[bytes, bytes]:
        """(the device id, the topic) as bytes for the record, remembered per topic: devices
        repeat their topics. Raises MappingError as device_id does."""
        cache = self._topic_cache
        keys = cache.get(mqtt_topic)
        if keys is None:
            if len(cache) >= TOPIC_CACHE:
                cache.clear()
            keys = cache[mqtt_topic] = (self.device_id(mqtt_topic).encode(), mqtt_topic.encode())
        return keys

    def device_id(self, mqtt_topic: str) -> str:
        """The device id: the configured level of the MQTT topic; MappingError when absent."""
        levels = mqtt_topic.split("/")
        try:
            device = levels[self.spec.device_id_level]
        except IndexError:
            raise MappingError(
                f"topic {mqtt_topic!r} has no level {self.spec.device_id_level} (the device id)"
            ) from None
        if not device:
            raise MappingError(f"topic {mqtt_topic!r} has an empty device id level")
        return device

    def map(self, mqtt_topic: str, payload: bytes) -> KafkaRecord:
        """The Kafka record for one MQTT message; raises MappingError naming what does not fit."""
        [result] = self.map_batch([mqtt_topic], [payload])
        if isinstance(result, MappingError):
            raise result
        return result

    def map_batch(
        self, mqtt_topics: Sequence[str], payloads: Sequence[bytes]
    ) -> list[KafkaRecord | MappingError]:
        """One Kafka record, or the MappingError that says why not, per MQTT message.

        The samples that fit are encoded with one call of the format's codec for the batch;
        only when that fails is each encoded alone, to find the one that does not fit.
        """
        results: list[KafkaRecord | MappingError | None] = [None] * len(payloads)
        rows: list[Sequence[Any]] = []
        fitting: list[tuple[int, bytes, bytes, dict[str, Any]]] = []
        topic_keys, values = self._topic_keys, self._values
        for index, (topic, payload) in enumerate(zip(mqtt_topics, payloads, strict=True)):
            try:
                device, topic_bytes = topic_keys(topic)
                document = _parse(payload)
                rows.append(values(document))
            except MappingError as error:
                results[index] = error
                continue
            fitting.append((index, device, topic_bytes, document))
        kafka_topic, header_fields = self.kafka_topic, self.spec.header_fields
        for (index, device, topic_bytes, document), value in zip(
            fitting, self._encode_all(rows), strict=True
        ):
            if isinstance(value, MappingError):
                results[index] = value
                continue
            headers: list[tuple[str, str | bytes | None]] = [(TOPIC_HEADER, topic_bytes)]
            if header_fields:
                headers += _header_values(document, header_fields)
            results[index] = KafkaRecord(kafka_topic, device, value, headers)
        return [result for result in results if result is not None]

    def _values(self, document: dict[str, Any]) -> Sequence[Any]:
        """The fields' values in sample order; the common case (every field there, of its JSON
        type already) costs one type check each, anything else goes through the full checks."""
        try:
            values = self._pick(document)
        except KeyError:
            return [_field_value(document, spec) for spec in self.fields]  # names the missing
        uniform = self._uniform_types
        if uniform is not None:
            if set(map(type, values)) <= uniform:  # C loops: the hot path of a busy bridge
                return values
        elif all(type(v) in allowed for v, allowed in zip(values, self._json_types, strict=True)):
            return values
        return [_field_value(document, spec) for spec in self.fields]

    def _encode_all(self, rows: list[Sequence[Any]]) -> list[bytes | MappingError]:
        if not rows:
            return []
        try:
            return list(self._encode(rows))
        except _ENCODE_ERRORS:
            pass
        encoded: list[bytes | MappingError] = []
        for row in rows:
            try:
                encoded.append(self._encode([row])[0])
            except _ENCODE_ERRORS as error:
                encoded.append(
                    MappingError(f"the sample does not fit the {self.spec.format} mapping: {error}")
                )
        return encoded

    def _encode(self, rows: list[Sequence[Any]]) -> list[bytes]:
        if self.dtype is None:
            return self.side.encode(
                [dict(zip(self._names, row, strict=True)) for row in rows], "data"
            )
        return self.side.encode(np.asarray(rows, dtype=self.dtype), "data")

    @functools.cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(spec.field for spec in self.fields)

    @functools.cached_property
    def _pick(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        """The fields' values of a document as a tuple, in one C call (KeyError: one missing)."""
        if len(self._names) == 1:
            return lambda document: (document[self._names[0]],)
        return operator.itemgetter(*self._names)

    @functools.cached_property
    def _topic_cache(self) -> dict[str, tuple[bytes, bytes]]:
        return {}

    @functools.cached_property
    def _uniform_types(self) -> frozenset[type] | None:
        """The JSON types every field takes as they are, when all fields agree (else None)."""
        kinds = set(self._json_types)
        return kinds.pop() if len(kinds) == 1 else None

    @functools.cached_property
    def _json_types(self) -> tuple[frozenset[type], ...]:
        return tuple(_JSON_TYPES[spec.type] for spec in self.fields)


def _ordered(spec: RouteSpec) -> tuple[FieldSpec, ...]:
    if not spec.fields:
        raise RouteConfigError(f"route {spec.topic_filter!r} maps no fields")
    positions = [i if f.position is None else f.position for i, f in enumerate(spec.fields)]
    if sorted(positions) != list(range(len(positions))):
        raise RouteConfigError(
            f"route {spec.topic_filter!r}: positions {positions} are not 0..{len(positions) - 1}"
        )
    return tuple(f for _, f in sorted(zip(positions, spec.fields, strict=True)))


def _common_dtype(fields: tuple[FieldSpec, ...]) -> np.dtype[Any]:
    return np.result_type(*(np.dtype(f.type) for f in fields))


def _header_values(
    document: dict[str, Any], names: Sequence[str]
) -> list[tuple[str, str | bytes | None]]:
    return [(name, json.dumps(document[name]).encode()) for name in names if name in document]


def _parse(payload: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(payload)  # several times faster than json's
    except orjson.JSONDecodeError:
        document = _parse_standard(payload)
    if not isinstance(document, dict):
        raise MappingError(f"the payload is a JSON {type(document).__name__}, not an object")
    return document


def _parse_standard(payload: bytes) -> Any:
    """Python's json decides what orjson refused: it also takes NaN, Infinity, UTF-16 and 32,
    integers past 64 bits (the field checks refuse those later), and its error names the
    place of a fault."""
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise MappingError(f"the payload is not JSON: {error}") from None


def _field_value(document: dict[str, Any], spec: FieldSpec) -> Any:
    """The payload's value of one field, checked against its declared type."""
    if spec.field not in document:
        raise MappingError(f"field {spec.field!r} is missing")
    value = document[spec.field]
    kind = spec.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):  # Kafka-ML's car simulator sends its label as text
            return value == "true"
    elif kind == "string":
        if isinstance(value, str):
            return value
    elif isinstance(value, bool):
        pass  # JSON true is no number
    elif kind in _INT_RANGES:
        if isinstance(value, int):
            low, high = _INT_RANGES[kind]
            if low <= value <= high:
                return value
            raise MappingError(f"field {spec.field!r} = {value} is out of range for {kind}")
    elif isinstance(value, int | float) and math.isfinite(value):
        return value
    raise MappingError(f"field {spec.field!r} = {json.dumps(value)[:80]} is not a {kind}")
