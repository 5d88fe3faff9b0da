"""Waiting for the control message, in process, on the real broker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer

from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import encode_deployment_id
from kafkaml.testing import wait_until
from model_training.control import ControlTimeoutError, wait_for_control
from model_training.tests.jobs import announce


def test_wait_skips_malformed_and_foreign_messages_and_returns_its_own(
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    control = new_topic(partitions=3)
    since = datetime.now(UTC) - timedelta(seconds=1)
    producer = make_producer(kafka_settings)
    producer.produce(control, b"{not json", encode_deployment_id(601))
    assert producer.flush(10) == 0
    announce(kafka_settings, control, 602, "other-topic:0:0:10", total=10)
    announce(kafka_settings, control, 601, "mine:0:5:25", total=20)

    found = wait_for_control(consumer_factory(), control, 601, since, timeout_s=30)

    assert found.message.deployment_id == 601
    assert found.message.topic == "mine:0:5:25"
    assert found.timestamp_ms >= int(since.timestamp() * 1000)
    assert "skipping a malformed control message" in caplog.text


def test_wait_ignores_messages_older_than_the_deployment(
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
) -> None:
    control = new_topic()
    announce(kafka_settings, control, 603, "stale:0:0:10", total=10)
    since = datetime.now(UTC) + timedelta(milliseconds=500)
    wait_until(lambda: datetime.now(UTC) > since, "the deployment's creation time", timeout_s=5)

    with pytest.raises(ControlTimeoutError, match="deployment 603"):
        wait_for_control(consumer_factory(), control, 603, since, timeout_s=3)


def test_wait_for_a_control_topic_that_never_appears_times_out_with_a_reason(
    consumer_factory: Callable[..., Consumer],
) -> None:
    with pytest.raises(ControlTimeoutError, match="does not exist"):
        wait_for_control(consumer_factory(), "no-such-topic-x1", 1, datetime.now(UTC), 2)
