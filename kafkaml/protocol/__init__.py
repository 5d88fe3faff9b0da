"""The wire protocol: control messages, topic ranges, and the RAW, AVRO, JSON and
TELEGRAF_STR_JSON sample formats.

The only place in kafkaml that knows the bytes; docs/wire-format.md describes them for producers
in other languages. Kafka-ML's producers write exactly this format.
"""

from kafkaml.protocol.control import (
    DEFAULT_CONTROL_TOPIC,
    ControlMessage,
    InputFormat,
    decode_deployment_id,
    encode_deployment_id,
)
from kafkaml.protocol.errors import (
    ControlMessageError,
    DecodeError,
    EncodeError,
    InputConfigError,
    ProtocolError,
    RangeReadError,
    TopicRangeError,
)
from kafkaml.protocol.formats import (
    UNLABELED_KEY,
    Codec,
    decode_batch,
    infer_side,
    input_format_of,
    side_from_config,
)
from kafkaml.protocol.ranges import TopicRange, format_ranges, is_bare_topic, parse_ranges
from kafkaml.protocol.reader import read_ranges
from kafkaml.protocol.sides import Side

__all__ = [
    "DEFAULT_CONTROL_TOPIC",
    "UNLABELED_KEY",
    "Codec",
    "ControlMessage",
    "ControlMessageError",
    "DecodeError",
    "EncodeError",
    "InputConfigError",
    "InputFormat",
    "ProtocolError",
    "RangeReadError",
    "Side",
    "TopicRange",
    "TopicRangeError",
    "decode_batch",
    "decode_deployment_id",
    "encode_deployment_id",
    "format_ranges",
    "infer_side",
    "input_format_of",
    "is_bare_topic",
    "parse_ranges",
    "read_ranges",
    "side_from_config",
]
