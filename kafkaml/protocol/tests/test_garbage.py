"""Whatever bytes arrive, decoding returns arrays or raises a ProtocolError: never a raw numpy,
fastavro or json exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkaml.protocol import DecodeError, ProtocolError, decode_batch

SCHEMAS = [
    {"type": "record", "name": "d", "fields": [
        {"name": "v", "type": {"type": "array", "items": "float"}}]},
    {"type": "record", "name": "d", "fields": [{"name": "x", "type": "double"}]},
    {"type": "record", "name": "d", "fields": [
        {"name": "a", "type": "float"}, {"name": "b", "type": "int"}]},
    {"type": "record", "name": "d", "fields": [
        {"name": "s", "type": "string"},
        {"name": "v", "type": {"type": "array", "items": "double"}}]},
    {"type": "record", "name": "d", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["x", "y"]}},
        {"name": "f", "type": {"type": "fixed", "name": "F", "size": 3}},
        {"name": "by", "type": "bytes"}, {"name": "l", "type": "long"},
        {"name": "bo", "type": "boolean"}]},
]  # fmt: skip
RAW_CONFIGS = [
    {"data_type": "float32", "data_reshape": "2"},
    {"data_type": "int16"},
    {"data_type": "uint8", "data_reshape": ""},
    {"data_type": "float64", "data_reshape": "-1 2"},
]
JSON_CONFIGS = [
    {},
    {"data_type": "float32"},
    {"data_type": "uint8", "data_reshape": "-1"},
    {"data_field": "v"},
    {"data_reshape": "2"},
]
blobs = st.lists(st.binary(max_size=40), min_size=1, max_size=4)
json_ish = st.from_regex(r'[\[\]{}0-9,.eE+\-" a-z:]{0,30}', fullmatch=True).map(str.encode)


def _decodes_or_refuses(input_format: str, config: Any, values: list[bytes]) -> None:
    try:
        decode_batch(input_format, config, values)
    except ProtocolError as error:
        assert str(error)


@settings(max_examples=300)
@given(blobs, st.sampled_from(SCHEMAS))
def test_random_bytes_as_avro_decode_or_raise_a_protocol_error(values: Any, schema: Any) -> None:
    _decodes_or_refuses("AVRO", {"data_scheme": json.dumps(schema)}, values)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=30) | json_ish, min_size=1, max_size=4),
       st.sampled_from(JSON_CONFIGS))  # fmt: skip
def test_random_text_as_json_decodes_or_raises_a_protocol_error(values: Any, config: Any) -> None:
    _decodes_or_refuses("JSON", config, values)


@settings(max_examples=300)
@given(blobs, st.sampled_from(RAW_CONFIGS))
def test_random_bytes_as_raw_decode_or_raise_a_protocol_error(values: Any, config: Any) -> None:
    _decodes_or_refuses("RAW", config, values)


def test_a_json_number_out_of_the_announced_range_is_refused_not_wrapped() -> None:
    try:
        decode_batch("JSON", {"data_type": "uint8"}, [b"[1]", b"[300]"])
    except DecodeError as error:
        assert error.index == 1 and "out of range for uint8" in str(error)
    else:
        raise AssertionError("300 was accepted as a uint8")


def test_an_avro_int_beyond_32_bits_is_refused() -> None:
    schema = {"type": "record", "name": "d", "fields": [{"name": "b", "type": "int"}]}
    huge = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x7F])  # zigzag varint of a 35-bit number
    try:
        decode_batch("AVRO", {"data_scheme": json.dumps(schema)}, [huge])
    except DecodeError as error:
        assert "out of range for int32" in str(error)
    else:
        raise AssertionError("a 35-bit number was accepted as an Avro int")
