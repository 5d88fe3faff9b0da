"""RAW, AVRO and JSON codecs: round trips, Kafka-ML's bytes, and named errors for bad records."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import fastavro
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kafkaml.protocol import (
    DecodeError,
    EncodeError,
    InputConfigError,
    InputFormat,
    decode_batch,
    infer_side,
)
from kafkaml.protocol.json_format import json_documents

NUMERIC_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float16", "float32", "float64", "complex64"]  # fmt: skip
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def _config(data: Any, label: Any) -> dict[str, Any]:
    return {**data.config("data"), **label.config("label")}


def _round_trip(input_format: InputFormat, x: Any, y: Any) -> tuple[Any, Any]:
    data = infer_side(input_format, x[0], "data")
    label = infer_side(input_format, y[0], "label")
    values, keys = data.encode(x, "data"), label.encode(y, "label")
    return decode_batch(input_format, _config(data, label), values, keys)


@st.composite
def batches(draw: st.DrawFn, dtypes: list[str]) -> tuple[Any, Any]:
    count = draw(st.integers(min_value=1, max_value=6))
    dtype, label_dtype = draw(st.sampled_from(dtypes)), draw(st.sampled_from(dtypes))
    x = draw(hnp.arrays(dtype, (count, *draw(shapes))))
    y = draw(hnp.arrays(label_dtype, (count, *draw(shapes))))
    return x, y


@given(batches(NUMERIC_DTYPES))
def test_raw_round_trips_every_dtype_and_shape_bit_for_bit(batch: tuple[Any, Any]) -> None:
    x, y = batch
    x_back, y_back = _round_trip(InputFormat.RAW, x, y)
    assert x_back.dtype == x.dtype and x_back.shape == x.shape
    assert x_back.tobytes() == x.tobytes() and y_back.tobytes() == y.tobytes()


AVRO_DTYPES = ["bool", "int8", "int16", "int32", "uint8", "uint16", "int64", "float32", "float64"]
AVRO_DECODED = {"int8": "int32", "int16": "int32", "uint8": "int32", "uint16": "int32"}


@given(batches(AVRO_DTYPES))
def test_avro_round_trips_arrays_through_inferred_record_schemas(batch: tuple[Any, Any]) -> None:
    x, y = batch
    x_back, y_back = _round_trip(InputFormat.AVRO, x, y)
    assert x_back.dtype == AVRO_DECODED.get(x.dtype.name, x.dtype.name)
    np.testing.assert_array_equal(x_back, x)
    np.testing.assert_array_equal(y_back, y)


JSON_DTYPES = ["bool", "int8", "int32", "int64", "uint8", "uint64", "float16", "float32", "float64"]


@given(batches(JSON_DTYPES), st.none() | st.text(min_size=1, max_size=8))
def test_json_round_trips_finite_arrays_with_their_dtype_and_shape(
    batch: tuple[Any, Any], field: str | None
) -> None:
    x, y = batch
    if x.dtype.kind == "f":
        x = np.nan_to_num(x, posinf=1.0, neginf=-1.0)
    if y.dtype.kind == "f":
        y = np.nan_to_num(y, posinf=1.0, neginf=-1.0)
    data = infer_side(InputFormat.JSON, x[0], "data", data_field=field)
    label = infer_side(InputFormat.JSON, y[0], "label")
    values, keys = data.encode(x, "data"), label.encode(y, "label")
    x_back, y_back = decode_batch("JSON", _config(data, label), values, keys)
    assert x_back.dtype == x.dtype and x_back.shape == x.shape
    np.testing.assert_array_equal(x_back, x)
    assert y_back is not None
    np.testing.assert_array_equal(y_back, y)


def test_json_documents_split_one_batch_write_into_samples_and_keep_negative_zero() -> None:
    assert json_documents(np.array([1.5, -0.0], dtype=np.float32)) == [b"1.5", b"-0.0"]
    assert json_documents(np.array([[1, 2], [3, 4]]), "x") == [b'{"x":[1,2]}', b'{"x":[3,4]}']
    deep = np.arange(8, dtype=np.int8).reshape(2, 2, 2)
    assert [json.loads(d) for d in json_documents(deep) or []] == deep.tolist()
    assert json_documents(np.array([[1j]])) is None


# -- Kafka-ML's bytes ------------------------------------------------------------------------


def test_kafka_ml_raw_records_decode_with_its_reshape_semantics() -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    values = [image.tobytes() for image in images]  # Kafka-ML's RawSink: ndarray.tobytes()
    keys = [label.tobytes() for label in labels]
    config = {"data_type": "uint8", "label_type": "uint8", "data_reshape": "28 28",
              "label_reshape": "1"}  # fmt: skip
    x, y = decode_batch("RAW", config, values, keys)
    np.testing.assert_array_equal(x, images)
    assert y is not None and y.shape == (3, 1)
    np.testing.assert_array_equal(y[:, 0], labels)


def test_kafka_ml_type_names_and_python_float_labels_decode() -> None:
    # Kafka-ML's base sink packs a Python float label as struct "f"; TensorFlow reads "float".
    keys = [struct.pack("f", 0.5), struct.pack("f", -2.0)]
    values = [np.array([1.5, 2.5]).tobytes(), np.array([3.0, 4.0]).tobytes()]
    config = {"data_type": "double", "data_reshape": "2", "label_type": "float",
              "label_reshape": ""}  # fmt: skip
    x, y = decode_batch("RAW", config, values, keys)
    np.testing.assert_array_equal(x, [[1.5, 2.5], [3.0, 4.0]])
    assert x.dtype == np.float64 and y is not None and y.dtype == np.float32
    np.testing.assert_array_equal(y, [0.5, -2.0])


def test_raw_without_a_reshape_gives_flat_samples() -> None:
    x, _ = decode_batch("RAW", {"data_type": "int16"}, [bytes(6), bytes(6)])
    assert x.shape == (2, 3)


HCOPD_DATA = {"type": "record", "name": "data", "fields": [
    {"name": "gender", "type": "float"}, {"name": "age", "type": "float"},
    {"name": "smoking", "type": "float"}]}  # fmt: skip
HCOPD_LABEL = {
    "type": "record",
    "name": "label",
    "fields": [{"name": "diagnosis", "type": "boolean"}],
}


def test_kafka_ml_avro_records_written_by_hand_decode_in_schema_order() -> None:
    # Avro binary of a record is its fields in order: float = 4 bytes little-endian,
    # boolean = one byte. This is what Kafka-ML's DatumWriter + BinaryEncoder writes.
    values = [struct.pack("<fff", 1.0, 65.0, 0.0), struct.pack("<fff", 0.0, 40.5, 1.0)]
    keys = [b"\x01", b"\x00"]
    config = {"data_scheme": json.dumps(HCOPD_DATA), "label_scheme": json.dumps(HCOPD_LABEL)}
    x, y = decode_batch("AVRO", config, values, keys)
    np.testing.assert_array_equal(x, [[1.0, 65.0, 0.0], [0.0, 40.5, 1.0]])
    assert x.dtype == np.float32
    assert y is not None
    np.testing.assert_array_equal(y, [True, False])


def test_avro_schema_given_as_a_python_repr_like_kafka_ml_accepts_is_read() -> None:
    config = {"data_scheme": str(HCOPD_DATA), "label_scheme": str(HCOPD_LABEL)}
    x, _ = decode_batch("AVRO", config, [struct.pack("<fff", 1, 2, 3)])
    np.testing.assert_array_equal(x, [[1, 2, 3]])


def test_avro_records_written_by_fastavro_decode_with_a_dict_schema() -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(HCOPD_DATA),
                               {"gender": 1.0, "age": 30.0, "smoking": 1.0})  # fmt: skip
    x, _ = decode_batch("AVRO", {"data_scheme": HCOPD_DATA}, [buffer.getvalue()])
    np.testing.assert_array_equal(x, [[1.0, 30.0, 1.0]])


def test_json_arrays_and_objects_with_a_data_field_decode() -> None:
    x, y = decode_batch("JSON", {}, [b"[1, 2]", b"[3, 4]"], [b"0", b"1"])
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert y is not None
    np.testing.assert_array_equal(y, [0, 1])
    config = {"data_field": "values", "data_type": "float32", "data_reshape": "2 1"}
    x, y = decode_batch("JSON", config, [b'{"values": [1, 2], "id": 9}'], None)
    assert x.shape == (1, 2, 1) and x.dtype == np.float32 and y is None


def test_unlabeled_records_decode_without_reading_keys() -> None:
    x, y = decode_batch("RAW", {"data_type": "uint8", "data_reshape": "2"}, [b"ab"], None)
    assert y is None and x.tolist() == [[97, 98]]


# -- bad input: named errors, never a numpy or fastavro traceback ------------------------------

RAW_CONFIG = {
    "data_type": "float32",
    "data_reshape": "2",
    "label_type": "uint8",
    "label_reshape": "",
}


def test_a_raw_value_of_the_wrong_size_names_the_record_and_the_sizes() -> None:
    values = [bytes(8), bytes(8), bytes(7), bytes(9)]
    with pytest.raises(DecodeError, match=r"record 2 has 7 bytes.*needs 8") as caught:
        decode_batch("RAW", RAW_CONFIG, values, [b"\x01"] * 4)
    assert caught.value.index == 2


def test_a_raw_label_of_the_wrong_size_is_reported_as_the_key() -> None:
    with pytest.raises(DecodeError, match="key of record 1") as caught:
        decode_batch("RAW", RAW_CONFIG, [bytes(8)] * 2, [b"\x01", b"\x01\x02"])
    assert caught.value.index == 1


def test_a_missing_label_key_is_named() -> None:
    with pytest.raises(DecodeError, match="record 1 has no key"):
        decode_batch("RAW", RAW_CONFIG, [bytes(8)] * 2, [b"\x01", None])


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"data_type": "floaty"}, "not a numpy dtype"),
        ({"data_type": "string"}, "not a numpy dtype"),
        ({"data_type": "str"}, "no fixed size"),
        ({"data_type": "object"}, "no fixed size"),
        ({}, "needs 'data_type'"),
        ({"data_type": "uint8", "data_reshape": "2 x"}, "not a list of dimensions"),
        ({"data_type": "uint8", "data_reshape": "-1 -1"}, "several -1"),
    ],
)
def test_a_raw_input_config_that_names_no_format_is_refused(config: Any, named: str) -> None:
    with pytest.raises(InputConfigError, match=named):
        decode_batch("RAW", config, [b"x"])


def test_an_unknown_input_format_is_refused() -> None:
    with pytest.raises(InputConfigError, match="PROTOBUF"):
        decode_batch("PROTOBUF", {}, [b"x"])


AVRO_CONFIG = {"data_scheme": json.dumps(HCOPD_DATA), "label_scheme": json.dumps(HCOPD_LABEL)}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (struct.pack("<ff", 1.0, 2.0), "does not match data_scheme"),
        (struct.pack("<ffff", 1.0, 2.0, 3.0, 4.0), "4 bytes left over"),
        (b"", "does not match data_scheme"),
    ],
)
def test_an_avro_record_that_does_not_match_its_schema_is_named(value: bytes, named: str) -> None:
    values = [struct.pack("<fff", 1, 2, 3), value]
    with pytest.raises(DecodeError, match=named) as caught:
        decode_batch("AVRO", AVRO_CONFIG, values, [b"\x01", b"\x00"])
    assert caught.value.index == 1


def test_an_avro_string_where_an_int_is_expected_is_named() -> None:
    schema = {"type": "record", "name": "r", "fields": [{"name": "s", "type": "string"}]}
    with pytest.raises(DecodeError, match="record 0"):
        decode_batch("AVRO", {"data_scheme": json.dumps(schema)}, [b"\x10ab"])  # length 8, 2 bytes


@pytest.mark.parametrize(
    ("scheme", "named"),
    [
        ("{not json", "not Avro schema JSON"),
        (json.dumps({"type": "record", "name": "r"}), "not a valid Avro schema"),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "r",
                    "fields": [{"name": "u", "type": ["null", "float"]}],
                }
            ),
            "kafkaml decodes",
        ),
    ],
)
def test_an_unusable_avro_schema_is_refused(scheme: str, named: str) -> None:
    with pytest.raises(InputConfigError, match=named):
        decode_batch("AVRO", {"data_scheme": scheme}, [b"\x00"])


@pytest.mark.parametrize(
    ("values", "index", "named"),
    [
        ([b"[1, 2]", b"[1, 2"], 1, "not JSON"),
        ([b"[1, 2]", b"1],[2"], 1, "not JSON"),
        # Two broken halves whose concatenation is a valid batch of the same count.
        ([b"[1", b"2],[3, 4]"], 0, "not JSON"),
        ([b"[1, 2]", b"\xff"], 1, "not JSON"),
        ([b"[1, 2]", b"[1, 2]", b"[1, 2, 3]"], 2, "shape"),
        ([b"[1, 2]", b'["a", "b"]'], 1, "does not fit"),
        ([b"[1, 2]", None], 1, "no value"),
    ],
)
def test_malformed_json_names_the_record(values: list[Any], index: int, named: str) -> None:
    with pytest.raises(DecodeError, match=named) as caught:
        decode_batch("JSON", {"data_type": "float32"}, values)
    assert caught.value.index == index


def test_a_json_object_without_the_data_field_is_named() -> None:
    with pytest.raises(DecodeError, match="field 'values'") as caught:
        decode_batch("JSON", {"data_field": "values"}, [b'{"values": [1]}', b'{"other": [1]}'])
    assert caught.value.index == 1


def test_a_json_reshape_that_cannot_hold_the_samples_is_named() -> None:
    with pytest.raises(DecodeError, match="cannot hold"):
        decode_batch("JSON", {"data_reshape": "3"}, [b"[1, 2]"])


def test_a_located_error_names_topic_partition_and_offset() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_batch("RAW", RAW_CONFIG, [bytes(3)], None)
    located = caught.value.at("sensors", 2, 1234)
    assert str(located).endswith("(topic sensors, partition 2, offset 1234)")
    assert (located.topic, located.partition, located.offset, located.index) == (
        "sensors",
        2,
        1234,
        0,
    )


# -- encoding (what sinks write) ---------------------------------------------------------------


def test_a_sample_of_another_shape_than_the_first_is_refused() -> None:
    side = infer_side(InputFormat.RAW, np.zeros(3, np.float32), "data")
    with pytest.raises(EncodeError, match="do not fit"):
        side.encode(np.zeros((2, 4), np.float32), "data")


def test_a_sample_that_cannot_be_cast_to_the_announced_type_is_refused() -> None:
    side = infer_side(InputFormat.RAW, np.zeros(3, np.int32), "data")
    with pytest.raises(EncodeError, match="cannot be written"):
        side.encode(np.zeros((2, 3), np.float64), "data")


def test_json_refuses_nan_which_other_languages_cannot_parse() -> None:
    side = infer_side(InputFormat.JSON, np.zeros(2), "data")
    with pytest.raises(EncodeError, match="sample 1"):
        side.encode(np.array([[1.0, 2.0], [np.nan, 1.0]]), "data")


def test_an_avro_record_missing_a_field_is_refused_on_send() -> None:
    from kafkaml.protocol.avro import AvroSide

    side = AvroSide.from_schema(HCOPD_DATA, "data_scheme")
    with pytest.raises(EncodeError, match="sample 0"):
        side.encode([{"gender": 1.0, "age": 2.0}], "data")


@settings(max_examples=25)
@given(st.lists(st.floats(width=32, allow_nan=False), min_size=3, max_size=3))
def test_avro_rows_fill_records_of_scalar_fields_in_schema_order(row: list[float]) -> None:
    from kafkaml.protocol.avro import AvroSide

    side = AvroSide.from_schema(HCOPD_DATA, "data_scheme")
    values = side.encode(np.array([row], dtype=np.float32), "data")
    assert values == [struct.pack("<fff", *row)]


MIXED_RECORD = {"type": "record", "name": "reading", "fields": [
    {"name": "count", "type": "int"}, {"name": "level", "type": "double"},
    {"name": "alarm", "type": "boolean"}]}  # fmt: skip
mixed_records = st.fixed_dictionaries(
    {
        "count": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "level": st.floats(allow_nan=False),
        "alarm": st.booleans(),
    }
)


@given(st.lists(mixed_records, min_size=1, max_size=6))
def test_avro_dict_records_round_trip_to_columns_in_schema_order(records: list[Any]) -> None:
    from kafkaml.protocol.avro import AvroSide

    side = AvroSide.from_schema(MIXED_RECORD, "data_scheme")
    x, _ = decode_batch("AVRO", side.config("data"), side.encode(records, "data"))
    expected = [[r["count"], r["level"], r["alarm"]] for r in records]
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, np.array(expected, dtype=np.float64))


def _varint(number: int) -> bytes:
    value, out = (number << 1) ^ (number >> 63), bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes([*out, value])


def test_avro_arrays_split_into_blocks_by_another_writer_decode_like_one_block() -> None:
    from kafkaml.protocol.avro import AvroSide

    side = AvroSide.from_schema(
        {"type": "record", "name": "Data", "fields": [
            {"name": "data", "type": {"type": "array", "items": "float"}}]},
        "data_scheme",
    )  # fmt: skip
    one_block = side.encode(np.array([[1, 2, 3]], np.float32), "data")[0]
    assert one_block == _varint(3) + struct.pack("<fff", 1, 2, 3) + b"\x00"
    two_blocks = _varint(2) + struct.pack("<ff", 4, 5) + _varint(1) + struct.pack("<f", 6) + b"\x00"
    sized_block = _varint(-3) + _varint(12) + struct.pack("<fff", 7, 8, 9) + b"\x00"
    x, _ = decode_batch("AVRO", side.config("data"), [one_block, two_blocks, sized_block])
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


@given(
    hnp.arrays(
        st.sampled_from(["float32", "float64"]),
        st.tuples(st.integers(1, 4), st.integers(0, 70)),
        elements=st.floats(width=32, allow_nan=False),
    )
)
def test_vectorized_avro_writes_the_bytes_fastavro_writes(x: Any) -> None:
    side: Any = infer_side(InputFormat.AVRO, x[0], "data")
    expected = []
    for row in x:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, side.parsed, {"data": row.tolist()})
        expected.append(buffer.getvalue())
    assert side.encode(x, "data") == expected
    records: list[Any] = [
        fastavro.schemaless_reader(io.BytesIO(value), side.parsed, None) for value in expected
    ]
    x_back, _ = decode_batch("AVRO", side.config("data"), expected)
    np.testing.assert_array_equal(x_back, [record["data"] for record in records])
