from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from kafkaml.kafka import KafkaSettings, consumer_config, make_producer, producer_config

RECORDS = 100_000


def _produce(settings: KafkaSettings, topic: str, count: int) -> None:
    producer = make_producer(settings)
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=b"x" * 100, on_delivery=on_delivery)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []


def _consume_until(consumer: Consumer, count: int) -> list[bytes]:
    """Consume at least `count` records (whole batches), committing what was consumed."""
    keys: list[bytes] = []
    while len(keys) < count:
        batch = consumer.consume(num_messages=5_000, timeout=10)
        assert batch, f"no record within 10 s after {len(keys)} records"
        for message in batch:
            assert message.error() is None, message.error()
            key = message.key()
            assert key is not None
            keys.append(key)
    consumer.commit(asynchronous=False)
    return keys


def test_every_record_is_consumed_once_and_a_second_group_member_resumes_from_commits(
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    group_id: str,
    consumer_factory: Callable[..., Consumer],
) -> None:
    topic = new_topic(partitions=3)
    _produce(kafka_settings, topic, RECORDS)

    first = consumer_factory(group_id)
    first.subscribe([topic])
    first_keys = _consume_until(first, 40_000)
    first.close()

    second = consumer_factory(group_id)
    second.subscribe([topic])
    second_keys = _consume_until(second, RECORDS - len(first_keys))

    assert set(first_keys).isdisjoint(second_keys)
    assert sorted(first_keys + second_keys) == sorted(str(i).encode() for i in range(RECORDS))
    committed = second.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    ends = [second.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
    assert [tp.offset for tp in committed] == ends


def test_security_settings_reach_every_client_config_and_secrets_stay_hidden() -> None:
    settings = KafkaSettings(
        bootstrap_servers="kafka-1:9093,kafka-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="s3cret",  # type: ignore[arg-type]
        ssl_ca_location="/etc/ca.pem",
    )
    for config in (producer_config(settings), consumer_config(settings, "g")):
        assert config["bootstrap.servers"] == "kafka-1:9093,kafka-2:9093"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.password"] == "s3cret"
        assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert "s3cret" not in repr(settings)


def test_settings_are_read_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAML_KAFKA_BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("KAFKAML_KAFKA_SECURITY_PROTOCOL", "SSL")
    settings = KafkaSettings()
    assert settings.client_config()["bootstrap.servers"] == "broker:19092"
    assert settings.client_config()["security.protocol"] == "SSL"
    assert "sasl.password" not in settings.client_config()


def test_tuned_defaults_and_overrides_are_merged() -> None:
    settings = KafkaSettings()
    config = consumer_config(settings, "g", session_timeout_ms=6000)
    assert config["fetch.queue.backoff.ms"] == 10
    assert config["enable.auto.commit"] is False
    assert config["session.timeout.ms"] == 6000
    assert producer_config(settings, linger_ms=5)["linger.ms"] == 5


def test_callback_overrides_keep_their_python_names() -> None:
    errors: list[object] = []
    config = producer_config(KafkaSettings(), error_cb=errors.append, linger_ms=1)
    assert config["error_cb"] is not None
    assert config["linger.ms"] == 1
    assert "error.cb" not in config


def test_every_producer_compresses_with_the_setting_and_none_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # none: kafka-python 2.0.2 as Kafka-ML installs it cannot read lz4, snappy or zstd.
    assert producer_config(KafkaSettings())["compression.type"] == "none"
    monkeypatch.setenv("KAFKAML_KAFKA_COMPRESSION_TYPE", "zstd")
    assert producer_config(KafkaSettings(), linger_ms=5)["compression.type"] == "zstd"
    monkeypatch.setenv("KAFKAML_KAFKA_COMPRESSION_TYPE", "brotli")
    with pytest.raises(ValueError, match="compression_type"):
        KafkaSettings()
