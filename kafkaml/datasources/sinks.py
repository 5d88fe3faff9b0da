"""Kafka-ML's sinks with their names and constructor meaning: RawSink, AvroSink, JsonSink and the
online variants that announce an open-ended stream for incremental training.

Types and shapes not given are inferred from the first sample (numpy dtype name and shape for
RAW and JSON, a one-field record schema for AVRO).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kafkaml.datasources.sink import KafkaMLSink
from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import DEFAULT_CONTROL_TOPIC, InputFormat, Side
from kafkaml.protocol.avro import AvroSide
from kafkaml.protocol.json_format import JsonSide, json_dtype
from kafkaml.protocol.raw import RawSide, parse_reshape
from kafkaml.protocol.sides import Role


class RawSink(KafkaMLSink):
    """Samples as raw little-endian bytes, labels as the keys' bytes (Kafka-ML's RawSink).

    `data_type`/`label_type` are numpy dtype names and `data_reshape`/`label_reshape` Kafka-ML's
    space-separated shapes; `group_id` is accepted for Kafka-ML's signature and not needed.
    """

    input_format = InputFormat.RAW

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        deployment_id: int | None = None,
        data_type: str | None = None,
        label_type: str | None = None,
        description: str = "",
        data_reshape: str | None = None,
        label_reshape: str | None = None,
        validation_rate: float = 0.0,
        test_rate: float = 0.0,
        control_topic: str = DEFAULT_CONTROL_TOPIC,
        group_id: str | None = None,
        *,
        unsupervised_topic: str | None = None,
        dataset_restrictions: dict[str, Any] | None = None,
        partition: int | None = 0,
        kafka_settings: KafkaSettings | None = None,
        progress: bool = True,
        flush_timeout_s: float = 120.0,
        boostrap_servers: str | None = None,
    ) -> None:
        super().__init__(
            bootstrap_servers or boostrap_servers, topic, deployment_id,
            description=description, validation_rate=validation_rate,
            test_rate=_test_rate(self, test_rate), control_topic=control_topic,
            unsupervised_topic=unsupervised_topic, dataset_restrictions=dataset_restrictions,
            partition=partition, kafka_settings=kafka_settings, progress=progress,
            flush_timeout_s=flush_timeout_s,
        )  # fmt: skip
        self._given: dict[Role, tuple[str | None, str | None]] = {
            "data": (data_type, data_reshape),
            "label": (label_type, label_reshape),
        }
        for role, (type_name, reshape) in self._given.items():
            if type_name is not None:
                config = {f"{role}_type": type_name, f"{role}_reshape": reshape}
                self._sides[role] = RawSide.from_config(config, role)

    def _infer_side(self, role: Role, sample: Any) -> Side:
        side = RawSide.infer(sample)
        reshape = self._given[role][1]
        if reshape is None:
            return side
        return dataclasses.replace(side, shape=parse_reshape(reshape, f"{role}_reshape"))


class AvroSink(KafkaMLSink):
    """Samples and labels as raw Avro binary records (Kafka-ML's AvroSink).

    Schemas come from `data_scheme_filename`/`label_scheme_filename` (Kafka-ML's arguments) or
    `data_scheme`/`label_scheme` (JSON text or a dict); absent, a one-field record schema is
    inferred from the first sample. Samples are dicts (records) or arrays: an array fills a
    one-field record, or a record of scalar fields in schema order.
    """

    input_format = InputFormat.AVRO

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        deployment_id: int | None = None,
        data_scheme_filename: str | Path | None = None,
        label_scheme_filename: str | Path | None = None,
        description: str = "",
        validation_rate: float = 0.0,
        test_rate: float = 0.0,
        control_topic: str = DEFAULT_CONTROL_TOPIC,
        group_id: str | None = None,
        *,
        data_scheme: str | dict[str, Any] | None = None,
        label_scheme: str | dict[str, Any] | None = None,
        unsupervised_topic: str | None = None,
        dataset_restrictions: dict[str, Any] | None = None,
        partition: int | None = 0,
        kafka_settings: KafkaSettings | None = None,
        progress: bool = True,
        flush_timeout_s: float = 120.0,
        boostrap_servers: str | None = None,
    ) -> None:
        super().__init__(
            bootstrap_servers or boostrap_servers, topic, deployment_id,
            description=description, validation_rate=validation_rate,
            test_rate=_test_rate(self, test_rate), control_topic=control_topic,
            unsupervised_topic=unsupervised_topic, dataset_restrictions=dataset_restrictions,
            partition=partition, kafka_settings=kafka_settings, progress=progress,
            flush_timeout_s=flush_timeout_s,
        )  # fmt: skip
        schemas: dict[Role, Any] = {
            "data": _schema(data_scheme, data_scheme_filename),
            "label": _schema(label_scheme, label_scheme_filename),
        }
        for role, schema in schemas.items():
            if schema is not None:
                self._sides[role] = AvroSide.from_schema(schema, f"{role}_scheme")

    def send_avro(self, data: Any, label: Any) -> None:
        """Kafka-ML's name for `send`."""
        self.send(data, label)

    def _infer_side(self, role: Role, sample: Any) -> Side:
        return AvroSide.infer(sample, role)


class JsonSink(KafkaMLSink):
    """Samples as JSON arrays (or objects holding the array under `data_field`), labels as JSON
    keys. The announced `data_type`/`data_reshape` make the reader rebuild the same arrays."""

    input_format = InputFormat.JSON

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        deployment_id: int | None = None,
        data_type: str | None = None,
        label_type: str | None = None,
        description: str = "",
        data_reshape: str | None = None,
        label_reshape: str | None = None,
        validation_rate: float = 0.0,
        test_rate: float = 0.0,
        control_topic: str = DEFAULT_CONTROL_TOPIC,
        group_id: str | None = None,
        *,
        data_field: str | None = None,
        unsupervised_topic: str | None = None,
        dataset_restrictions: dict[str, Any] | None = None,
        partition: int | None = 0,
        kafka_settings: KafkaSettings | None = None,
        progress: bool = True,
        flush_timeout_s: float = 120.0,
        boostrap_servers: str | None = None,
    ) -> None:
        super().__init__(
            bootstrap_servers or boostrap_servers, topic, deployment_id,
            description=description, validation_rate=validation_rate,
            test_rate=_test_rate(self, test_rate), control_topic=control_topic,
            unsupervised_topic=unsupervised_topic, dataset_restrictions=dataset_restrictions,
            partition=partition, kafka_settings=kafka_settings, progress=progress,
            flush_timeout_s=flush_timeout_s,
        )  # fmt: skip
        self._given: dict[Role, tuple[str | None, str | None]] = {
            "data": (data_type, data_reshape),
            "label": (label_type, label_reshape),
        }
        self._data_field = data_field

    def _infer_side(self, role: Role, sample: Any) -> Side:
        field = self._data_field if role == "data" else None
        side = JsonSide.infer(sample, field)
        type_name, reshape = self._given[role]
        if type_name is not None:
            side = dataclasses.replace(
                side, type_name=type_name, dtype=json_dtype(type_name, f"{role}_type")
            )
        if reshape is not None:
            side = dataclasses.replace(side, shape=parse_reshape(reshape, f"{role}_reshape"))
        return side


class OnlineRawSink(RawSink):
    """RawSink for incremental training: the control message (bare topic, `total_msg` null,
    `incremental` true, `test_rate` 0) goes out before the first sample; no ranges are measured.

    Positional arguments follow Kafka-ML's OnlineRawSink (no rates; `control_topic` ninth).
    """

    online = True

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic: str | None = None,
        deployment_id: int | None = None,
        data_type: str | None = None,
        label_type: str | None = None,
        description: str = "",
        data_reshape: str | None = None,
        label_reshape: str | None = None,
        control_topic: str = DEFAULT_CONTROL_TOPIC,
        group_id: str | None = None,
        *,
        validation_rate: float = 0.0,
        unsupervised_topic: str | None = None,
        dataset_restrictions: dict[str, Any] | None = None,
        partition: int | None = 0,
        kafka_settings: KafkaSettings | None = None,
        progress: bool = True,
        flush_timeout_s: float = 120.0,
        boostrap_servers: str | None = None,
    ) -> None:
        super().__init__(
            bootstrap_servers, topic, deployment_id, data_type, label_type, description,
            data_reshape, label_reshape, validation_rate, 0.0, control_topic, group_id,
            unsupervised_topic=unsupervised_topic, dataset_restrictions=dataset_restrictions,
            partition=partition, kafka_settings=kafka_settings, progress=progress,
            flush_timeout_s=flush_timeout_s,
            boostrap_servers=boostrap_servers,
        )  # fmt: skip

    def online_close(self) -> None:
        """Kafka-ML's name for `close`."""
        self.close()


class OnlineAvroSink(AvroSink):
    """AvroSink for incremental training (see OnlineRawSink)."""

    online = True


class OnlineJsonSink(JsonSink):
    """JsonSink for incremental training (see OnlineRawSink)."""

    online = True


def _test_rate(sink: KafkaMLSink, test_rate: float) -> float:
    if sink.online and test_rate:
        raise ValueError(
            "an online sink announces test_rate 0: incremental training has no test set"
        )
    return test_rate


def _schema(schema: str | dict[str, Any] | None, filename: str | Path | None) -> Any:
    if schema is not None and filename is not None:
        raise ValueError("give a schema or its file name, not both")
    if filename is not None:
        return Path(filename).read_text(encoding="utf-8")
    return schema
