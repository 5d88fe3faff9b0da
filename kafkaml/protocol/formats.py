"""One entry point per direction for every input format: `decode_batch` for readers, `Codec` for
sinks. Which format means what lives in raw.py, avro.py and json_format.py.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafkaml.protocol.avro import AvroSide
from kafkaml.protocol.control import InputFormat
from kafkaml.protocol.errors import InputConfigError
from kafkaml.protocol.json_format import JsonSide
from kafkaml.protocol.raw import RawSide
from kafkaml.protocol.sides import Array, Role, Side
from kafkaml.protocol.telegraf import TelegrafSide

# A key Kafka-ML's sinks write for a sample without a label; never decoded.
UNLABELED_KEY = b"\x00"


def decode_batch(
    input_format: InputFormat | str,
    input_config: Mapping[str, Any],
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None = None,
) -> tuple[Array, Array | None]:
    """The samples (X) and labels (y) in a batch of records, each with a leading batch dimension.

    `keys` None means unlabeled records: y is None. Raises DecodeError (InputConfigError for a
    bad input_config) whose `index` is the first bad record; a RAW batch is checked and read
    with one `np.frombuffer`, so its cost does not grow with Python calls per record.
    """
    data = side_from_config(input_format, input_config, "data")
    x = data.decode(values, "data")
    if keys is None:
        return x, None
    label = side_from_config(input_format, input_config, "label")
    return x, label.decode(keys, "label")


def side_from_config(
    input_format: InputFormat | str, input_config: Mapping[str, Any], role: Role
) -> Side:
    """The codec of one side that input_config describes (cached: batches reuse it)."""
    if not isinstance(input_config, Mapping):
        raise InputConfigError(f"input_config must be a JSON object, not {input_config!r}")
    try:
        text = json.dumps(input_config, sort_keys=True)
    except (TypeError, ValueError):
        raise InputConfigError(
            "input_config must be plain JSON (strings, numbers, lists)"
        ) from None
    return _cached_side(input_format_of(input_format), text, role)


@functools.lru_cache(maxsize=128)
def _cached_side(input_format: InputFormat, config_text: str, role: Role) -> Side:
    config = json.loads(config_text)
    if input_format is InputFormat.RAW:
        return RawSide.from_config(config, role)
    if input_format is InputFormat.AVRO:
        return AvroSide.from_config(config, role)
    if input_format is InputFormat.TELEGRAF_STR_JSON:
        return TelegrafSide.from_config(config, role)
    return JsonSide.from_config(config, role)


def input_format_of(value: InputFormat | str) -> InputFormat:
    """`value` as an InputFormat (names are case-insensitive); raises InputConfigError."""
    try:
        return InputFormat(value.upper() if isinstance(value, str) else value)
    except ValueError:
        known = ", ".join(member.value for member in InputFormat)
        raise InputConfigError(f"input format {value!r} is not one of {known}") from None


def infer_side(input_format: InputFormat, sample: Any, role: Role, **options: Any) -> Side:
    """The side that carries samples like `sample`: its dtype and shape (RAW, JSON) or a
    one-field record schema (AVRO). Raises EncodeError when the format cannot carry it."""
    if input_format is InputFormat.RAW:
        return RawSide.infer(sample)
    if input_format is InputFormat.AVRO:
        return AvroSide.infer(sample, role)
    json_side = JsonSide.infer(sample, options.get(f"{role}_field"))
    if input_format is InputFormat.TELEGRAF_STR_JSON and role == "data":
        return TelegrafSide(json_side)
    return json_side


@dataclass(frozen=True)
class Codec:
    """Both sides of a stream's records; `label` None for a stream without labels."""

    input_format: InputFormat
    data: Side
    label: Side | None

    def input_config(self) -> dict[str, Any]:
        """The input_config that announces this codec in a control message."""
        config = self.data.config("data")
        if self.label is not None:
            config.update(self.label.config("label"))
        return config
