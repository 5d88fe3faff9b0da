"""pytest fixtures for every component's tests: a real broker, fresh topics and groups.

Registered by the root conftest.py. The broker is the one named by KAFKAML_TEST_BOOTSTRAP, or a
broker this plugin starts for the session (deploy/local/kafka/broker.sh on KAFKAML_TEST_BROKER_PORT,
default 19092, data under .cache/test-kafka) and stops at the end.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer
from kafkaml.local import PROJECT_ROOT, LocalStackError, scratch_broker

# Group joins in tests take seconds, not librdkafka's 45 s session default.
TEST_CONSUMER_OVERRIDES = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def broker_environment(port: int, directory: Path) -> dict[str, str]:
    """Environment for broker.sh that runs a broker on `port` with its data in `directory`."""
    return {
        **os.environ,
        "KAFKAML_BROKER_PORT": str(port),
        "KAFKAML_BROKER_DIR": str(directory),
        "KAFKAML_CACHE_DIR": str(PROJECT_ROOT / ".cache"),
    }


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a running broker for this test session."""
    given = os.environ.get("KAFKAML_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    port = int(os.environ.get("KAFKAML_TEST_BROKER_PORT", "19092"))
    try:
        with scratch_broker(port, PROJECT_ROOT / ".cache" / f"test-kafka-{port}") as bootstrap:
            yield bootstrap
    except LocalStackError as error:
        pytest.fail(f"could not start the test broker: {error}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Client settings pointed at the test broker."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture(scope="session")
def kafka_admin(kafka_settings: KafkaSettings) -> AdminClient:
    return make_admin(kafka_settings)


@pytest.fixture
def new_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Factory of fresh uuid topics, deleted after the test: `new_topic(partitions=3)`."""
    created: list[str] = []

    def create(partitions: int = 1, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        ensure_topics(kafka_admin, [name], partitions=partitions)
        created.append(name)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=30).values():
            future.result(timeout=30)


@pytest.fixture
def topic(new_topic: Callable[..., str]) -> str:
    """One fresh single-partition topic."""
    return new_topic()


@pytest.fixture
def group_id() -> str:
    """A fresh consumer group id."""
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consumer_factory(kafka_settings: KafkaSettings) -> Iterator[Callable[..., Consumer]]:
    """Factory of consumers with test-speed group timeouts, closed after the test."""
    consumers: list[Consumer] = []

    def create(group_id: str | None = None, **overrides: object) -> Consumer:
        consumer = make_consumer(
            kafka_settings,
            group_id,
            **{k.replace(".", "_"): v for k, v in TEST_CONSUMER_OVERRIDES.items()},
            **overrides,
        )
        consumers.append(consumer)
        return consumer

    yield create
    for consumer in consumers:
        with contextlib.suppress(RuntimeError):  # already closed by the test
            consumer.close()
