"""Sinks on the real broker: what they announce reads back exactly, and failures are loud."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from kafkaml.datasources import (
    AvroSink,
    DeliveryError,
    JsonSink,
    KafkaMLSink,
    OnlineAvroSink,
    OnlineJsonSink,
    OnlineRawSink,
    RawSink,
    SinkError,
)
from kafkaml.kafka import KafkaSettings, ensure_topics, make_producer
from kafkaml.protocol import ControlMessage, EncodeError, decode_batch, read_ranges

ConsumerFactory = Callable[..., Consumer]


def _records(consumers: ConsumerFactory, topic: str, count: int) -> list[Message]:
    """The first `count` records of partition 0, polled until they are there (30 s at most)."""
    consumer = consumers()
    consumer.assign([TopicPartition(topic, 0, 0)])
    records: list[Message] = []
    deadline = time.monotonic() + 30
    while len(records) < count and time.monotonic() < deadline:
        records += [m for m in consumer.consume(count - len(records), 1.0) if m.error() is None]
    assert len(records) == count, f"{topic} has {len(records)} records, expected {count}"
    return records


def _announced(consumers: ConsumerFactory, control_topic: str) -> tuple[bytes, ControlMessage]:
    (record,) = _records(consumers, control_topic, 1)
    key, value = record.key(), record.value()
    assert key is not None and value is not None
    return key, ControlMessage.from_record(key, value)


def _control_count(consumers: ConsumerFactory, control_topic: str) -> int:
    return consumers().get_watermark_offsets(TopicPartition(control_topic, 0), timeout=10)[1]


def _read_back(settings: KafkaSettings, message: ControlMessage) -> tuple[Any, Any]:
    batches = list(read_ranges(settings, message.ranges, message.input_format,
                               message.input_config))  # fmt: skip
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


SAMPLES = 100_000


@pytest.mark.parametrize("sink_class", [RawSink, AvroSink, JsonSink])
def test_100k_samples_sent_read_back_identical_and_in_order(
    sink_class: type[KafkaMLSink],
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:
    data, control = new_topic(partitions=3), new_topic()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((SAMPLES, 18), dtype=np.float32)
    y = rng.integers(0, 10, SAMPLES, dtype=np.int32)
    with sink_class(kafka_settings.bootstrap_servers, data, 300, description="bench",
                    validation_rate=0.2, test_rate=0.1, control_topic=control,
                    progress=False) as sink:  # fmt: skip
        sink.send_many(x, y)
    key, message = _announced(consumer_factory, control)
    assert key == b"\x01\x2c" and message.deployment_id == 300
    assert message.total_msg == SAMPLES and not message.incremental
    assert (message.validation_rate, message.test_rate) == (0.2, 0.1)
    assert message.topic == f"{data}:0:0:{SAMPLES},{data}:1:0:0,{data}:2:0:0"
    x_back, y_back = _read_back(kafka_settings, message)
    assert x_back.dtype == np.float32 and y_back.dtype == np.int32
    assert y_back is not None
    np.testing.assert_array_equal(x_back, x)
    np.testing.assert_array_equal(y_back, y)


def test_kafka_ml_arguments_give_its_input_config_and_its_record_bytes(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    sink = RawSink(boostrap_servers=kafka_settings.bootstrap_servers, topic=data,
                   deployment_id=1, description="Mnist dataset", validation_rate=0.1,
                   test_rate=0.1, control_topic=control, data_type="uint8", label_type="uint8",
                   data_reshape="28 28", label_reshape="1", progress=False)  # fmt: skip
    images = np.arange(4 * 784, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28)
    labels = np.array([[3], [1], [4], [1]], dtype=np.uint8)
    for image, label in zip(images, labels, strict=True):
        sink.send(image, label)
    sink.close()
    key, message = _announced(consumer_factory, control)
    assert key == b"\x01"
    assert message.input_config == {"data_type": "uint8", "label_type": "uint8",
                                    "data_reshape": "28 28", "label_reshape": "1"}  # fmt: skip
    records = _records(consumer_factory, data, 4)
    assert [r.value() for r in records] == [image.tobytes() for image in images]
    assert [r.key() for r in records] == [label.tobytes() for label in labels]


def test_types_and_shapes_are_inferred_from_the_first_sample(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    with RawSink(kafka_settings.bootstrap_servers, data, 5, control_topic=control,
                 progress=False) as sink:  # fmt: skip
        sink.send(np.zeros((28, 28), np.uint8), np.uint8(4))
        sink.send(np.ones((28, 28), np.uint8), np.uint8(2))
    _, message = _announced(consumer_factory, control)
    assert message.input_config == {"data_type": "uint8", "data_reshape": "28 28",
                                    "label_type": "uint8", "label_reshape": ""}  # fmt: skip
    x, y = _read_back(kafka_settings, message)
    assert x.shape == (2, 28, 28) and y.tolist() == [4, 2]


def test_dataframes_are_sent_like_their_arrays(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": [0.0, -1.0, 2.0]})
    target = pd.Series([1, 0, 1], dtype="int64")
    with JsonSink(kafka_settings.bootstrap_servers, data, 6, control_topic=control,
                  progress=False) as sink:  # fmt: skip
        sink.send_many(frame, target)
    _, message = _announced(consumer_factory, control)
    x, y = _read_back(kafka_settings, message)
    np.testing.assert_array_equal(x, frame.to_numpy())
    np.testing.assert_array_equal(y, target.to_numpy())


def test_online_sink_announces_the_bare_topic_before_its_first_sample(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    # Kafka-ML's positional order: ..., data_reshape, label_reshape, control_topic
    sink = OnlineRawSink(kafka_settings.bootstrap_servers, data, 1000, None, None, "", None,
                         None, control, validation_rate=0.1, progress=False)  # fmt: skip
    sink.send(np.array([1.0, 2.0], np.float32), np.float32(0.5))
    key, message = _announced(consumer_factory, control)  # before close()
    assert decode_key(key) == 1000
    assert message.topic == data and message.ranges == []
    assert (message.total_msg, message.incremental, message.test_rate) == (None, True, 0.0)
    assert message.input_config["data_reshape"] == "2"
    sink.send_many(np.ones((3, 2), np.float32), np.zeros(3, np.float32))
    assert sink.close() == message
    assert _control_count(consumer_factory, control) == 1
    with pytest.raises(SinkError, match="closed"):
        sink.send(np.array([1.0, 2.0], np.float32), np.float32(0.5))


def decode_key(key: bytes) -> int:
    return int.from_bytes(key, "big")


def test_an_online_sink_cannot_announce_a_test_set() -> None:
    with pytest.raises(ValueError, match="test_rate 0"):
        OnlineJsonSink("127.0.0.1:1", "t", 1, test_rate=0.2)


def test_unlabeled_samples_go_to_the_unsupervised_topic_and_are_announced(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, unlabeled, control = new_topic(), new_topic(), new_topic()
    x = np.arange(40, dtype=np.int16).reshape(20, 2)
    with RawSink(kafka_settings.bootstrap_servers, data, 2, control_topic=control,
                 unsupervised_topic=unlabeled, progress=False) as sink:  # fmt: skip
        sink.send_many(x[:5], np.arange(5, dtype=np.uint8))
        sink.send_many_unlabeled(x[5:])
        sink.send_unlabeled(x[0])
    _, message = _announced(consumer_factory, control)
    assert message.total_msg == 5
    assert message.unsupervised_topic == f"{unlabeled}:0:0:16"
    batches = list(read_ranges(kafka_settings, message.unsupervised_ranges, "RAW",
                               message.input_config, labeled=False))  # fmt: skip
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), [*x[5:], x[0]])
    assert {r.key() for r in _records(consumer_factory, unlabeled, 16)} == {b"\x00"}


@pytest.mark.parametrize("sink_class", [RawSink, AvroSink, JsonSink])
def test_a_stream_without_labels_announces_only_the_data_side_and_reads_back(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory, sink_class: type[KafkaMLSink],
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    with sink_class(kafka_settings.bootstrap_servers, data, 3, control_topic=control,
                    progress=False) as sink:  # fmt: skip
        sink.send_many(x[:19])
        sink.send(x[19])
        with pytest.raises(SinkError, match="without labels"):
            sink.send(x[0], np.float32(1))
    _, message = _announced(consumer_factory, control)
    assert message.total_msg == 20
    assert not any(name.startswith("label") for name in message.input_config)
    batches = list(read_ranges(kafka_settings, message.ranges, message.input_format,
                               message.input_config, labeled=False))  # fmt: skip
    np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), x)
    assert {r.key() for r in _records(consumer_factory, data, 20)} == {b"\x00"}


def test_a_failed_delivery_raises_and_nothing_is_announced(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(partitions=1), new_topic()
    sink = RawSink(kafka_settings.bootstrap_servers, data, 1, control_topic=control,
                   partition=5, progress=False)  # fmt: skip
    with pytest.raises(DeliveryError):
        sink.send(np.zeros(3), np.zeros(1))
        sink.close()
    assert _control_count(consumer_factory, control) == 0


def test_records_from_another_producer_in_the_range_prevent_the_announcement(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    sink = RawSink(kafka_settings.bootstrap_servers, data, 1, control_topic=control,
                   progress=False)  # fmt: skip
    sink.send_many(np.zeros((4, 2)), np.zeros(4))
    other = make_producer(kafka_settings)
    other.produce(data, b"not ours", None, 0)
    assert other.flush(30) == 0
    with pytest.raises(SinkError, match="another producer"):
        sink.close()
    assert _control_count(consumer_factory, control) == 0


def test_an_error_inside_the_with_block_announces_nothing(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    with (
        pytest.raises(EncodeError, match="do not fit"),
        RawSink(
            kafka_settings.bootstrap_servers, data, 1, control_topic=control, progress=False
        ) as sink,
    ):
        sink.send(np.zeros(3, np.float32), np.float32(1))
        sink.send(np.zeros(4, np.float32), np.float32(1))  # another shape than the first
    assert _control_count(consumer_factory, control) == 0


@pytest.mark.parametrize(
    ("action", "named"),
    [
        (lambda sink: sink.close(), "no sample"),
        (lambda sink: sink.send_unlabeled(np.zeros(2)), "unsupervised_topic"),
    ],
)
def test_misuse_raises_a_sink_error(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], action: Any, named: str
) -> None:
    sink = RawSink(kafka_settings.bootstrap_servers, new_topic(), 1, control_topic=new_topic(),
                   progress=False)  # fmt: skip
    with pytest.raises(SinkError, match=named):
        action(sink)


def test_avro_sink_reads_kafka_ml_schema_files_and_sends_dict_records(
    tmp_path: Any, kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data_file, label_file = tmp_path / "data.avsc", tmp_path / "label.avsc"
    data_file.write_text('{"type": "record", "name": "data", "fields": [{"name": "gender", '
                         '"type": "float"}, {"name": "age", "type": "float"}]}')  # fmt: skip
    label_file.write_text('{"type": "record", "name": "label", "fields": '
                          '[{"name": "diagnosis", "type": "boolean"}]}')  # fmt: skip
    data, control = new_topic(), new_topic()
    with AvroSink(kafka_settings.bootstrap_servers, data, 9, str(data_file), str(label_file),
                  control_topic=control, progress=False) as sink:  # fmt: skip
        sink.send_avro({"gender": 1.0, "age": 61.0}, {"diagnosis": True})
        sink.send(np.array([0.0, 35.5]), {"diagnosis": False})
    _, message = _announced(consumer_factory, control)
    assert message.input_config["data_scheme"] == data_file.read_text()
    x, y = _read_back(kafka_settings, message)
    np.testing.assert_array_equal(x, [[1.0, 61.0], [0.0, 35.5]])
    assert y.tolist() == [True, False]


def test_partitioning_by_key_like_kafka_ml_announces_every_partitions_range(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(partitions=3), new_topic()
    x = np.arange(600, dtype=np.float64).reshape(300, 2)
    y = np.arange(300, dtype=np.int64) % 7
    with RawSink(kafka_settings.bootstrap_servers, data, 4, control_topic=control,
                 partition=None, progress=False) as sink:  # fmt: skip
        sink.send_many(x, y)
    _, message = _announced(consumer_factory, control)
    assert sorted(r.partition for r in message.ranges) == [0, 1, 2]
    assert message.total_msg == 300 and sum(r.size for r in message.ranges) == 300
    x_back, y_back = _read_back(kafka_settings, message)
    order = np.argsort(x_back[:, 0])
    np.testing.assert_array_equal(x_back[order], x)
    np.testing.assert_array_equal(y_back[order], y)


@pytest.mark.parametrize("sink_class", [OnlineAvroSink, OnlineJsonSink])
def test_online_avro_and_json_sinks_announce_first_and_stream_decodable_records(
    sink_class: type[KafkaMLSink], kafka_settings: KafkaSettings,
    new_topic: Callable[..., str], consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    data, control = new_topic(), new_topic()
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 0, 1], dtype=np.int64)
    with sink_class(kafka_settings.bootstrap_servers, data, 12, control_topic=control,
                    progress=False) as sink:  # fmt: skip
        sink.send_many(x, y)
    _, message = _announced(consumer_factory, control)
    assert message.topic == data and message.incremental and message.total_msg is None
    records = _records(consumer_factory, data, 4)
    values, keys = [r.value() for r in records], [r.key() for r in records]
    x_back, y_back = decode_batch(message.input_format, message.input_config, values, keys)
    assert y_back is not None
    np.testing.assert_array_equal(x_back, x)
    np.testing.assert_array_equal(y_back, y)


def test_a_record_the_broker_rejects_after_sending_fails_the_close(
    kafka_settings: KafkaSettings, kafka_admin: Any, new_topic: Callable[..., str],
    consumer_factory: ConsumerFactory,
) -> None:  # fmt: skip
    control = new_topic()
    data = f"test-small-{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_admin, [data], config={"max.message.bytes": "200"})
    try:
        sink = RawSink(None, data, 1, control_topic=control, kafka_settings=kafka_settings,
                       progress=False)  # fmt: skip
        sink.send(np.random.default_rng(1).random(500), np.float64(1))  # 4 kB: over the limit
        with pytest.raises(DeliveryError, match="not delivered"):
            sink.close()
    finally:
        for future in kafka_admin.delete_topics([data]).values():
            future.result(timeout=30)
    assert _control_count(consumer_factory, control) == 0


def test_unreachable_brokers_raise_a_sink_error_within_the_timeout() -> None:
    with pytest.raises(SinkError, match="cannot read the offsets"):
        JsonSink("127.0.0.1:9", "anything", 1, flush_timeout_s=2, progress=False)
