"""TELEGRAF_STR_JSON: a record's value is a Telegraf metric in JSON whose `fields.value` is a
string holding the sample as JSON (how Telegraf's JSON serializer writes a string field, e.g. of
an MQTT message taken verbatim); its key is the label as JSON, as in the JSON format.

`input_config` is the JSON format's (`data_type`, `data_reshape`, `data_field`, all optional),
applied to the JSON text inside the metric. Kafka-ML's inference accepted this format; its
training never could.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafkaml.protocol.errors import DecodeError
from kafkaml.protocol.json_format import JsonSide
from kafkaml.protocol.sides import Array, Role

METRIC_NAME = "kafkaml"
"""The measurement name a sink writes; readers accept any."""


@dataclass(frozen=True)
class TelegrafSide:
    """Samples as JSON text in the `fields.value` string of a Telegraf JSON metric."""

    inner: JsonSide

    @classmethod
    def from_config(cls, config: Mapping[str, Any], role: Role) -> TelegrafSide | JsonSide:
        """The data side unwraps the metric; the label side (the key) is plain JSON."""
        inner = JsonSide.from_config(config, role)
        return cls(inner) if role == "data" else inner

    def config(self, role: Role) -> dict[str, Any]:
        return self.inner.config(role)

    def encode(self, batch: Any, role: Role) -> list[bytes]:
        return [
            json.dumps(
                {"fields": {"value": text.decode()}, "name": METRIC_NAME, "tags": {},
                 "timestamp": 0},
                separators=(",", ":"),
            ).encode()
            for text in self.inner.encode(batch, role)
        ]  # fmt: skip

    def decode(self, blobs: Sequence[bytes | None], role: Role) -> Array:
        return self.inner.decode([_unwrap(blob, index) for index, blob in enumerate(blobs)], role)


def _unwrap(blob: bytes | None, index: int) -> bytes:
    """The JSON text in the metric's `fields.value`; DecodeError naming the record otherwise."""
    try:
        metric = json.loads(blob) if blob is not None else None
    except ValueError as error:
        raise DecodeError(
            f"the value of record {index} is not JSON: {error}", index=index
        ) from None
    fields = metric.get("fields") if isinstance(metric, dict) else None
    text = fields.get("value") if isinstance(fields, dict) else None
    if not isinstance(text, str):
        raise DecodeError(
            f"the value of record {index} is not a Telegraf JSON metric with a string "
            "field 'value'",
            index=index,
        )
    return text.encode()
