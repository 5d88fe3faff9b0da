"""pytest fixtures for every component's tests: a real broker, fresh topics and groups, and
`wait_until` for conditions that hold a while later, and the whole local stack (`kafkaml_stack`).

Registered by the root conftest.py. The broker is the one named by KAFKAML_TEST_BOOTSTRAP, or a
broker this plugin starts for the session (deploy/local/kafka/broker.sh on KAFKAML_TEST_BROKER_PORT,
default 19092, data under .cache/test-kafka) and stops at the end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer
from kafkaml.local import (
    PROJECT_ROOT,
    LocalSettings,
    LocalStackError,
    backend_url,
    scratch_broker,
    services_down,
    services_up,
)

# Group joins in tests take seconds, not librdkafka's 45 s session default.
TEST_CONSUMER_OVERRIDES = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition a test waited for did not hold within its timeout.

    An AssertionError: pytest reports it as a failed claim, and code that handles failed
    assertions (`except AssertionError`, `pytest.raises(AssertionError)`) handles it too, which
    the BaseException that `pytest.fail` raises would slip past.
    """

    def __init__(self, what: str, timeout_s: float) -> None:
        super().__init__(f"timed out after {timeout_s:g} s waiting for {what}")
        self.what = what
        self.timeout_s = timeout_s


def wait_until(
    condition: Callable[[], T | None], what: str, timeout_s: float = 60.0, interval_s: float = 0.1
) -> T:
    """Call `condition` every `interval_s` until it returns a truthy value, and return that value.

    Raises WaitTimeout naming `what` when no call returned a truthy value within `timeout_s`.
    An exception `condition` raises propagates at once: a condition may raise to stop waiting
    early (a process it depends on died).
    """
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise WaitTimeout(what, timeout_s)
        time.sleep(interval_s)  # poll interval, not a stand-in for the condition
    return value


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


@dataclass(frozen=True)
class Stack:
    """A running kafkaml stack: where its API is, who may sign in, which broker it uses."""

    url: str
    username: str
    password: str
    bootstrap_servers: str
    control_topic: str
    data_dir: Path


@pytest.fixture(scope="session")
def kafkaml_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The local stack as `make run` starts it (backend under gunicorn with the local runner,
    control logger, supervisord), on this session's broker, with its own data folder, port,
    admin password and control topic. Stopped, with every job it started, at the end."""
    host, _, port = kafka_bootstrap.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        pytest.skip(f"the local stack runs on a loopback broker, not {kafka_bootstrap}")
    root = tmp_path_factory.mktemp("stack")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        backend_port = int(probe.getsockname()[1])
    settings = LocalSettings(
        cache_dir=root / "cache",
        data_dir=root / "data",
        broker_port=int(port),
        backend_port=backend_port,
    )
    stack = Stack(
        url=backend_url(settings),
        username="admin",
        password=f"pw-{uuid.uuid4().hex[:12]}",
        bootstrap_servers=kafka_bootstrap,
        control_topic=f"test-control-{uuid.uuid4().hex[:12]}",
        data_dir=settings.data_dir,
    )
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as env:  # what supervisord and its programs inherit
        env.setenv("KAFKAML_ADMIN_PASSWORD", stack.password)
        env.setenv("KAFKAML_CONTROL_TOPIC", stack.control_topic)
        env.delenv("DJANGO_SETTINGS_MODULE", raising=False)
        try:
            services_up(settings, out=lines.append)
        except LocalStackError as error:
            services_down(settings, out=lines.append)
            pytest.fail(f"the stack did not start: {error}", pytrace=False)
    try:
        yield stack
    finally:
        services_down(settings, out=lines.append)
