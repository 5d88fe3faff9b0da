from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings, make_producer
from model_training.federated.exchange import (
    COORDINATOR,
    GLOBAL,
    MAGIC,
    UPDATE,
    Assembler,
    Envelope,
    ExchangeError,
    decode_weights,
    encode_weights,
    parse_credentials,
    publish,
    verify_coordinator,
    verify_sender,
)

KEYS = {"worker-a": b"secret-a", "worker-b": b"secret-b"}


def _read_all(consumer: Consumer, topic: str, count: int) -> list[Message]:
    consumer.assign([TopicPartition(topic, 0, 0)])
    records: list[Message] = []
    for _ in range(60):
        records += [r for r in consumer.consume(count - len(records), timeout=1.0) if not r.error()]
        if len(records) >= count:
            break
    return records


dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        dtypes.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3))),
        max_size=4,
    )
)
def test_weights_container_round_trips(arrays: list[Array]) -> None:
    decoded = decode_weights(encode_weights(arrays))
    assert len(decoded) == len(arrays)
    for got, want in zip(decoded, arrays, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_a_pickled_object_array_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"run": "code"}], dtype=object), allow_pickle=True)
    blob = MAGIC + (1).to_bytes(4, "big") + buffer.tell().to_bytes(8, "big") + buffer.getvalue()
    with pytest.raises(ExchangeError, match=r"plain \.npy"):
        decode_weights(blob)


def test_chunked_update_round_trips_over_the_broker(
    kafka_settings: KafkaSettings, topic: str, consumer_factory: Callable[..., Consumer]
) -> None:
    weights = [np.random.default_rng(1).normal(size=(300, 100)).astype(np.float32), np.arange(7)]
    update = Envelope(UPDATE, 3, "worker-a", weights, samples=42, metrics={"train": {"loss": 0.5}})
    chunks = publish(
        make_producer(kafka_settings),
        topic,
        update,
        {"worker-a": KEYS["worker-a"]},
        chunk_bytes=16_384,
    )
    assert chunks > 5  # 120 kB of weights in 16 kB records
    assembler = Assembler(verify_sender(KEYS))
    [received] = assembler.feed(_read_all(consumer_factory(), topic, chunks))
    assert (received.kind, received.round, received.sender, received.samples) == (
        UPDATE,
        3,
        "worker-a",
        42,
    )
    assert received.metrics == {"train": {"loss": 0.5}}
    assert received.weights is not None
    for got, want in zip(received.weights, weights, strict=True):
        np.testing.assert_array_equal(got, want)
    assert assembler.refused == []


def test_forged_and_unknown_updates_are_refused_and_logged(
    kafka_settings: KafkaSettings,
    topic: str,
    consumer_factory: Callable[..., Consumer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = make_producer(kafka_settings)
    weights = [np.ones(3, np.float32)]
    publish(producer, topic, Envelope(UPDATE, 0, "worker-a", weights, 5), {"worker-a": b"guessed"})
    publish(producer, topic, Envelope(UPDATE, 0, "mallory", weights, 5), {"mallory": b"anything"})
    publish(
        producer, topic, Envelope(UPDATE, 0, "worker-b", weights, 5), {"worker-a": KEYS["worker-a"]}
    )
    publish(
        producer, topic, Envelope(UPDATE, 0, "worker-b", weights, 5), {"worker-b": KEYS["worker-b"]}
    )
    assembler = Assembler(verify_sender(KEYS))
    accepted = assembler.feed(_read_all(consumer_factory(), topic, 4))
    assert [envelope.sender for envelope in accepted] == ["worker-b"]
    assert [reason for _, reason in assembler.refused] == [
        "bad signature for 'worker-a'",
        "unknown worker 'mallory'",
        "no signature for 'worker-b'",
    ]
    assert "refused an exchange message from 'mallory'" in caplog.text


def test_tampered_chunk_is_refused(
    kafka_settings: KafkaSettings, topic: str, consumer_factory: Callable[..., Consumer]
) -> None:
    publish(
        make_producer(kafka_settings), topic, Envelope(UPDATE, 0, "worker-a", [np.ones(4)], 1), KEYS
    )
    [record] = _read_all(consumer_factory(), topic, 1)
    record.set_value(encode_weights([np.full(4, 1e9)]))
    assembler = Assembler(verify_sender(KEYS))
    assert assembler.feed([record]) == []
    assert assembler.refused == [("worker-a", "weights do not match their signed digest")]


def test_a_worker_accepts_only_globals_signed_for_it_by_the_coordinator(
    kafka_settings: KafkaSettings, topic: str, consumer_factory: Callable[..., Consumer]
) -> None:
    producer = make_producer(kafka_settings)
    publish(producer, topic, Envelope(GLOBAL, 0, COORDINATOR, [np.ones(2)]), KEYS)
    publish(
        producer,
        topic,
        Envelope(GLOBAL, 1, "worker-b", [np.ones(2)]),
        {"worker-a": KEYS["worker-b"]},
    )
    records = _read_all(consumer_factory(), topic, 2)
    mine = Assembler(verify_coordinator("worker-a", KEYS["worker-a"])).feed(records)
    assert [envelope.round for envelope in mine] == [0]
    outsider = Assembler(verify_coordinator("worker-c", b"other"))
    assert outsider.feed(records) == []


def test_credentials_parse() -> None:
    assert parse_credentials("a:x, b:y:z") == {"a": "x", "b": "y:z"}
    with pytest.raises(ValueError):
        parse_credentials("a")
