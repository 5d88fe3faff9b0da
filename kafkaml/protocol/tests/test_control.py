"""Control messages and deployment-id keys: round trips, Kafka-ML's bytes, and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaml.nesting import json_text_depth, json_value_depth
from kafkaml.protocol import (
    ControlMessage,
    ControlMessageError,
    InputFormat,
    decode_deployment_id,
    encode_deployment_id,
)
from kafkaml.protocol.control import MAX_VALUE_BYTES

topic_names = st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True)
offsets = st.integers(min_value=0, max_value=2**62)


@st.composite
def range_texts(draw: st.DrawFn) -> tuple[str, int]:
    """A ranges text and the number of offsets it spans."""
    name = draw(topic_names)
    entries, total = [], 0
    for partition in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(offsets)
        size = draw(st.integers(min_value=0, max_value=10**6))
        entries.append(f"{name}:{partition}:{start}:{start + size}")
        total += size
    return ",".join(entries), total


json_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_objects = st.dictionaries(
    st.text(max_size=10), st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3))
)


@st.composite
def control_messages(draw: st.DrawFn) -> ControlMessage:
    validation = draw(st.floats(min_value=0, max_value=0.49))
    test = draw(st.floats(min_value=0, max_value=0.49))
    if draw(st.booleans()):
        topic, total, incremental = draw(topic_names), None, True
    else:
        topic, count = draw(range_texts())
        total, incremental = draw(st.sampled_from([count, None])), draw(st.booleans())
    unsupervised = draw(st.none() | topic_names | range_texts().map(lambda pair: pair[0]))
    return ControlMessage(
        deployment_id=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        topic=topic,
        input_format=draw(st.sampled_from(InputFormat)),
        input_config=draw(json_objects),
        description=draw(st.text(max_size=30)),
        validation_rate=validation,
        test_rate=test,
        total_msg=total,
        incremental=incremental,
        unsupervised_topic=unsupervised,
        dataset_restrictions=draw(json_objects),
    )


@given(st.integers(min_value=0, max_value=2**128))
def test_deployment_id_key_round_trips_in_the_fewest_bytes(deployment_id: int) -> None:
    key = encode_deployment_id(deployment_id)
    assert decode_deployment_id(key) == deployment_id
    assert len(key) == max(1, (deployment_id.bit_length() + 7) // 8)


@given(st.integers(min_value=0, max_value=255))
def test_ids_up_to_255_are_the_single_byte_kafka_ml_writes(deployment_id: int) -> None:
    assert encode_deployment_id(deployment_id) == bytes([deployment_id])


def test_keys_of_any_length_decode_big_endian() -> None:
    assert decode_deployment_id(b"\x01\x2c") == 300
    assert decode_deployment_id(b"\x00\x00\x00\x07") == 7


@pytest.mark.parametrize("bad", [-1, True, 1.5, "7"])
def test_an_id_that_is_not_a_non_negative_integer_is_refused(bad: Any) -> None:
    with pytest.raises(ControlMessageError, match="deployment id"):
        encode_deployment_id(bad)


@given(control_messages())
def test_control_message_round_trips_through_its_record(message: ControlMessage) -> None:
    key, value = message.to_record()
    assert ControlMessage.from_record(key, value) == message


@given(control_messages(), st.integers(min_value=256, max_value=2**40))
def test_a_message_sent_again_to_a_large_deployment_keeps_everything_else(
    message: ControlMessage, deployment_id: int
) -> None:
    moved = message.with_deployment(deployment_id)
    key, value = moved.to_record()
    assert decode_deployment_id(key) == deployment_id
    assert ControlMessage.from_record(key, value).to_value() == message.to_value()


KAFKA_ML_MESSAGE = {
    "topic": "automl:0:0:70000",
    "unsupervised_topic": None,
    "input_format": "RAW",
    "description": "Mnist dataset",
    "dataset_restrictions": {},
    "input_config": {
        "data_type": "uint8",
        "label_type": "uint8",
        "data_reshape": "28 28",
        "label_reshape": "1",
    },
    "validation_rate": 0.1,
    "test_rate": 0.1,
    "total_msg": 70000,
    "incremental": False,
}


def test_kafka_ml_sinks_control_record_is_read_field_by_field() -> None:
    key, value = bytes([1]), json.dumps(KAFKA_ML_MESSAGE).encode()
    message = ControlMessage.from_record(key, value)
    assert message.deployment_id == 1
    assert message.input_format is InputFormat.RAW
    assert message.input_config["data_reshape"] == "28 28"
    assert (message.validation_rate, message.test_rate, message.total_msg) == (0.1, 0.1, 70000)
    assert [(r.topic, r.partition, r.start, r.end) for r in message.ranges] == [
        ("automl", 0, 0, 70000)
    ]
    assert message.incremental is False


def test_to_value_writes_exactly_kafka_ml_field_names() -> None:
    message = ControlMessage.from_value(1, KAFKA_ML_MESSAGE)
    assert message.to_value() == KAFKA_ML_MESSAGE


def test_kafka_ml_online_message_without_the_newer_fields_is_incremental() -> None:
    value = {"topic": "stream", "input_format": "RAW", "description": "",
             "input_config": {"data_type": "float32"}}  # fmt: skip
    message = ControlMessage.from_value(3, value)
    assert message.incremental is True
    assert message.total_msg is None
    assert message.ranges == []
    assert message.test_rate == 0.0


def test_input_config_and_restrictions_written_as_json_text_are_accepted() -> None:
    value = {**KAFKA_ML_MESSAGE, "input_config": json.dumps(KAFKA_ML_MESSAGE["input_config"]),
             "dataset_restrictions": '{"features": {}}'}  # fmt: skip
    message = ControlMessage.from_value(1, value)
    assert message.input_config == KAFKA_ML_MESSAGE["input_config"]
    assert message.dataset_restrictions == {"features": {}}


def _without(name: str) -> dict[str, Any]:
    return {key: value for key, value in KAFKA_ML_MESSAGE.items() if key != name}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (_without("topic"), "'topic'"),
        ({**KAFKA_ML_MESSAGE, "topic": ""}, "'topic'"),
        ({**KAFKA_ML_MESSAGE, "topic": "automl:0:10"}, "'topic'"),
        ({**KAFKA_ML_MESSAGE, "topic": "automl:0:10:5"}, "'topic'"),
        ({**KAFKA_ML_MESSAGE, "topic": "bad topic"}, "'topic'"),
        (_without("input_format"), "'input_format'"),
        ({**KAFKA_ML_MESSAGE, "input_format": "PROTOBUF"}, "'input_format'"),
        (_without("input_config"), "'input_config'"),
        ({**KAFKA_ML_MESSAGE, "input_config": [1, 2]}, "'input_config'"),
        ({**KAFKA_ML_MESSAGE, "input_config": "{not json"}, "'input_config'"),
        ({**KAFKA_ML_MESSAGE, "validation_rate": 1.5}, "'validation_rate'"),
        ({**KAFKA_ML_MESSAGE, "validation_rate": "0.1"}, "'validation_rate'"),
        ({**KAFKA_ML_MESSAGE, "test_rate": -0.1}, "'test_rate'"),
        ({**KAFKA_ML_MESSAGE, "validation_rate": 0.6, "test_rate": 0.5}, "no samples"),
        ({**KAFKA_ML_MESSAGE, "total_msg": -1}, "'total_msg'"),
        ({**KAFKA_ML_MESSAGE, "total_msg": "70000"}, "'total_msg'"),
        ({**KAFKA_ML_MESSAGE, "total_msg": 69999}, "does not match"),
        ({**KAFKA_ML_MESSAGE, "incremental": "yes"}, "'incremental'"),
        ({**KAFKA_ML_MESSAGE, "description": 7}, "'description'"),
        ({**KAFKA_ML_MESSAGE, "topic": "stream", "incremental": False}, "incremental"),
        ({**KAFKA_ML_MESSAGE, "unsupervised_topic": "u:0:x:1"}, "'unsupervised_topic'"),
    ],
)
def test_a_missing_or_invalid_field_is_named_in_the_error(
    value: dict[str, Any], named: str
) -> None:
    with pytest.raises(ControlMessageError, match=named):
        ControlMessage.from_record(b"\x01", json.dumps(value).encode())


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        (None, b"{}", "no key"),
        (b"", b"{}", "no key"),
        (b"\x01", None, "no value"),
        (b"\x01", b"{not json", "not JSON"),
        (b"\x01", b"\xff\xfe", "not JSON"),
        (b"\x01", b"[1, 2]", "not a JSON object"),
    ],
)
def test_a_record_that_is_no_control_message_is_refused(
    key: bytes | None, value: bytes | None, named: str
) -> None:
    with pytest.raises(ControlMessageError, match=named):
        ControlMessage.from_record(key, value)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({**KAFKA_ML_MESSAGE, "topic": f"t:0:0:{2**70}", "total_msg": 2**70}, "largest offset"),
        ({**KAFKA_ML_MESSAGE, "topic": f"t:{2**31}:0:1", "total_msg": 1}, "partition"),
        ({**KAFKA_ML_MESSAGE, "topic": "t", "total_msg": 2**63}, "'total_msg'"),
        (
            {**KAFKA_ML_MESSAGE, "topic": f"t:0:0:{2**62},t:1:0:{2**62}", "total_msg": None},
            "more than",
        ),
    ],
)
def test_offsets_and_counts_beyond_a_signed_64_bit_integer_are_refused(
    value: dict[str, Any], named: str
) -> None:
    with pytest.raises(ControlMessageError, match=named):
        ControlMessage.from_record(b"\x01", json.dumps(value).encode())


def test_a_deployment_id_beyond_a_signed_64_bit_integer_is_refused() -> None:
    key = encode_deployment_id(2**70)
    with pytest.raises(ControlMessageError, match="largest id"):
        ControlMessage.from_record(key, json.dumps(KAFKA_ML_MESSAGE).encode())


@pytest.mark.parametrize("depth", [33, 10_000, 1_000_000])
def test_json_nested_deeper_than_the_limit_is_refused_without_recursion(depth: int) -> None:
    text = json.dumps({**KAFKA_ML_MESSAGE, "input_config": "@"}).replace('"@"', '{"a": @}')
    deep = text.replace("@", _nested(depth)).encode()
    if len(deep) <= MAX_VALUE_BYTES:
        with pytest.raises(ControlMessageError, match="nests"):
            ControlMessage.from_record(b"\x01", deep)
    as_text = {**KAFKA_ML_MESSAGE, "dataset_restrictions": _nested(depth)}
    with pytest.raises(ControlMessageError, match="nests deeper"):
        ControlMessage.from_value(1, as_text)


def test_an_already_parsed_value_nested_too_deep_is_refused_without_recursion() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ControlMessageError, match="nests"):
        ControlMessage.from_value(1, {**KAFKA_ML_MESSAGE, "input_config": {"a": deep}})


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    value = {**KAFKA_ML_MESSAGE, "description": "[" * 100 + '\\"{' * 100}
    assert ControlMessage.from_record(b"\x01", json.dumps(value).encode()).description


def test_a_value_over_the_size_limit_is_refused() -> None:
    value = {**KAFKA_ML_MESSAGE, "description": "x" * MAX_VALUE_BYTES}
    with pytest.raises(ControlMessageError, match="bytes"):
        ControlMessage.from_record(b"\x01", json.dumps(value).encode())


@given(
    st.recursive(
        json_leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
    )
)
def test_the_text_depth_and_the_parsed_depth_agree(value: Any) -> None:
    assert json_text_depth(json.dumps(value).encode()) == json_value_depth(value)
