"""The control message: how a producer announces a finished (or online) data stream to a job.

Key: the deployment id as a big-endian unsigned integer. Value: a JSON object with Kafka-ML's
field names. See docs/wire-format.md for the byte-level description.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kafkaml.nesting import json_text_depth, json_value_depth
from kafkaml.protocol.errors import ControlMessageError, TopicRangeError
from kafkaml.protocol.ranges import (
    OFFSET_MAX,
    TopicRange,
    is_bare_topic,
    parse_ranges,
    validate_topic_name,
)

DEFAULT_CONTROL_TOPIC = "KAFKA_ML_CONTROL_TOPIC"

# Bounds of a control message, so that whoever reads one (the control logger, a job, the
# backend) can parse and store it: a value of at most 1 MiB, JSON nested at most 32 deep (the
# backend's JSON columns refuse deeper values), and ids and counts within a signed 64-bit
# integer (Kafka's offsets and the database's columns).
MAX_VALUE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
DEPLOYMENT_ID_MAX = 2**63 - 1
COUNT_MAX = OFFSET_MAX


class InputFormat(StrEnum):
    """How the samples of a stream are encoded."""

    RAW = "RAW"
    AVRO = "AVRO"
    JSON = "JSON"
    TELEGRAF_STR_JSON = "TELEGRAF_STR_JSON"


def encode_deployment_id(deployment_id: int) -> bytes:
    """The control-message key for `deployment_id`: minimal big-endian bytes, at least one.

    Ids up to 255 give the single byte Kafka-ML writes. Raises ControlMessageError for a
    negative id or a non-integer.
    """
    if isinstance(deployment_id, bool) or not isinstance(deployment_id, int):
        raise ControlMessageError(f"deployment id {deployment_id!r} is not an integer")
    if deployment_id < 0:
        raise ControlMessageError(f"deployment id {deployment_id} is negative")
    return deployment_id.to_bytes(max(1, (deployment_id.bit_length() + 7) // 8), "big")


def decode_deployment_id(key: bytes | None) -> int:
    """The deployment id in a control-message key of any length (big-endian, unsigned).

    Raises ControlMessageError for a missing or empty key.
    """
    if not key:
        raise ControlMessageError("control message has no key (the deployment id)")
    return int.from_bytes(key, "big")


@dataclass(frozen=True)
class ControlMessage:
    """One announced data stream. Construct it with valid values; `from_value` validates wire input.

    `topic` is the wire text: ranges (`name:partition:start:end,...`) for a bounded stream, or a
    bare topic name for an online one (then `total_msg` is None and `incremental` is True).
    """

    deployment_id: int
    topic: str
    input_format: InputFormat
    input_config: dict[str, Any]
    description: str = ""
    validation_rate: float = 0.0
    test_rate: float = 0.0
    total_msg: int | None = None
    incremental: bool = False
    unsupervised_topic: str | None = None
    dataset_restrictions: dict[str, Any] = field(default_factory=dict)

    @property
    def ranges(self) -> list[TopicRange]:
        """The announced ranges of labeled data; empty for a bare (online) topic name."""
        return [] if is_bare_topic(self.topic) else parse_ranges(self.topic)

    @property
    def unsupervised_ranges(self) -> list[TopicRange]:
        """The announced ranges of unlabeled data; empty when there are none or it is online."""
        text = self.unsupervised_topic
        return [] if text is None or is_bare_topic(text) else parse_ranges(text)

    def with_deployment(self, deployment_id: int) -> ControlMessage:
        """The same stream announced to another deployment (the UI's "send again")."""
        _check_deployment_id(deployment_id)
        return dataclasses.replace(self, deployment_id=deployment_id)

    def to_value(self) -> dict[str, Any]:
        """The JSON object exactly as on the wire, with Kafka-ML's field names."""
        return {
            "topic": self.topic,
            "unsupervised_topic": self.unsupervised_topic,
            "input_format": self.input_format.value,
            "description": self.description,
            "dataset_restrictions": self.dataset_restrictions,
            "input_config": self.input_config,
            "validation_rate": self.validation_rate,
            "test_rate": self.test_rate,
            "total_msg": self.total_msg,
            "incremental": self.incremental,
        }

    def to_record(self) -> tuple[bytes, bytes]:
        """The (key, value) to produce on the control topic."""
        value = json.dumps(self.to_value(), allow_nan=False).encode("utf-8")
        return encode_deployment_id(self.deployment_id), value

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None) -> ControlMessage:
        """The message in a control-topic record. Raises ControlMessageError when it is not one."""
        deployment_id = decode_deployment_id(key)
        if value is None:
            raise ControlMessageError("control message has no value")
        if len(value) > MAX_VALUE_BYTES:
            raise ControlMessageError(
                f"control message value has {len(value)} bytes, more than {MAX_VALUE_BYTES}"
            )
        if (depth := json_text_depth(value)) > MAX_JSON_DEPTH:
            raise ControlMessageError(
                f"control message value nests {depth} deep, deeper than {MAX_JSON_DEPTH}"
            )
        try:
            parsed = json.loads(value)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise ControlMessageError(f"control message value is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise ControlMessageError("control message value is not a JSON object")
        return cls.from_value(deployment_id, parsed)

    @classmethod
    def from_value(cls, deployment_id: int, value: Mapping[str, Any]) -> ControlMessage:
        """The message in a parsed JSON object. Raises ControlMessageError naming the bad field.

        Absent optional fields take Kafka-ML's defaults: rates 0, `dataset_restrictions` {},
        `incremental` true only for a bare topic name; `configuration` (Kafka-ML's first name for
        `input_config`) is accepted, and so is an `input_config` that is a JSON string. The
        bounds (ids and counts within a signed 64-bit integer, nesting) hold for every message.
        """
        _check_deployment_id(deployment_id)
        if (depth := json_value_depth(value)) > MAX_JSON_DEPTH:
            raise ControlMessageError(
                f"control message value nests {depth} deep, deeper than {MAX_JSON_DEPTH}"
            )
        topic = _topic_field(value, "topic", required=True)
        assert topic is not None
        message = cls(
            deployment_id=deployment_id,
            topic=topic,
            input_format=_format_field(value),
            input_config=_object_field(value, _input_config_name(value), required=True),
            description=_string_field(value, "description"),
            validation_rate=_rate_field(value, "validation_rate"),
            test_rate=_rate_field(value, "test_rate"),
            total_msg=_count_field(value, "total_msg"),
            incremental=_bool_field(value, "incremental", default=is_bare_topic(topic)),
            unsupervised_topic=_topic_field(value, "unsupervised_topic", required=False),
            dataset_restrictions=_object_field(value, "dataset_restrictions", required=False),
        )
        _check_consistency(message)
        return message


def _check_deployment_id(deployment_id: int) -> None:
    encode_deployment_id(deployment_id)
    if deployment_id > DEPLOYMENT_ID_MAX:
        raise ControlMessageError(
            f"deployment id {deployment_id} is larger than {DEPLOYMENT_ID_MAX}, the largest id"
        )


def _input_config_name(value: Mapping[str, Any]) -> str:
    return (
        "configuration"
        if "input_config" not in value and "configuration" in value
        else ("input_config")
    )


def _topic_field(value: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    text = value.get(name)
    if text is None and not required:
        return None
    if not isinstance(text, str) or not text.strip():
        raise ControlMessageError(f"control message field {name!r} must be a non-empty string")
    try:
        if is_bare_topic(text):
            validate_topic_name(text)
        else:
            parse_ranges(text)
    except TopicRangeError as error:
        raise ControlMessageError(f"control message field {name!r}: {error}") from None
    return text


def _format_field(value: Mapping[str, Any]) -> InputFormat:
    name = value.get("input_format")
    try:
        if not isinstance(name, str):
            raise ValueError(name)
        return InputFormat(name.upper())
    except ValueError:
        known = ", ".join(member.value for member in InputFormat)
        raise ControlMessageError(
            f"control message field 'input_format' is {name!r}, not one of {known}"
        ) from None


def _object_field(value: Mapping[str, Any], name: str, *, required: bool) -> dict[str, Any]:
    raw = value.get(name)
    if raw is None and not required:
        return {}
    # Kafka-ML's federated sinks and its logger write these objects as JSON text.
    if isinstance(raw, str):
        if json_text_depth(raw.encode("utf-8", "surrogatepass")) > MAX_JSON_DEPTH:
            raise ControlMessageError(
                f"control message field {name!r} nests deeper than {MAX_JSON_DEPTH}"
            )
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ControlMessageError(
                f"control message field {name!r} is a string that is not a JSON object"
            ) from None
    if not isinstance(raw, dict):
        raise ControlMessageError(f"control message field {name!r} must be a JSON object")
    return raw


def _string_field(value: Mapping[str, Any], name: str) -> str:
    text = value.get(name)
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ControlMessageError(f"control message field {name!r} must be a string")
    return text


def _rate_field(value: Mapping[str, Any], name: str) -> float:
    rate = value.get(name)
    if rate is None:
        return 0.0
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
        raise ControlMessageError(f"control message field {name!r} must be a number")
    if not 0 <= rate < 1:
        raise ControlMessageError(f"control message field {name!r} is {rate}, not in [0, 1)")
    return float(rate)


def _count_field(value: Mapping[str, Any], name: str) -> int | None:
    count = value.get(name)
    if count is None:
        return None
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # some JSON writers emit 70000.0
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= COUNT_MAX:
        raise ControlMessageError(
            f"control message field {name!r} must be an integer in 0..{COUNT_MAX} or null"
        )
    return count


def _bool_field(value: Mapping[str, Any], name: str, *, default: bool) -> bool:
    flag = value.get(name)
    if flag is None:
        return default
    if not isinstance(flag, bool):
        raise ControlMessageError(f"control message field {name!r} must be true or false")
    return flag


def _check_consistency(message: ControlMessage) -> None:
    if message.validation_rate + message.test_rate >= 1:
        raise ControlMessageError(
            f"validation_rate {message.validation_rate} plus test_rate {message.test_rate} "
            "leaves no samples for training"
        )
    if is_bare_topic(message.topic):
        if not message.incremental:
            raise ControlMessageError(
                f"topic {message.topic!r} has no ranges, which only an incremental stream may do"
            )
        return
    announced = sum(topic_range.size for topic_range in message.ranges)
    if announced > COUNT_MAX:
        raise ControlMessageError(
            f"the announced ranges span {announced} offsets, more than {COUNT_MAX}"
        )
    if message.total_msg is not None and message.total_msg != announced:
        raise ControlMessageError(
            f"total_msg {message.total_msg} does not match the {announced} offsets in the "
            "announced ranges"
        )
