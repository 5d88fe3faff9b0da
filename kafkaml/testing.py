"""pytest fixtures for every component's tests: a real broker, fresh topics and groups, and
`wait_until` for conditions that hold a while later, and the whole local stack (`kafkaml_stack`).

Registered by the root conftest.py. The broker is the one named by KAFKAML_TEST_BOOTSTRAP, or a
broker this plugin starts for the session (deploy/local/kafka/broker.sh on KAFKAML_TEST_BROKER_PORT,
default 19092, data under .cache/test-kafka) and stops at the end.

`secure_kafka` is a second, SASL_SSL (SCRAM-SHA-512) broker, started for the session by the
first test that asks for it, with certificates made here by openssl; its port is
KAFKAML_TEST_SECURE_BROKER_PORT or a free one (its controller's too).
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

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
    condition: Callable[[], T | Literal[False] | None],
    what: str,
    timeout_s: float = 60.0,
    interval_s: float = 0.1,
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


def let_go_of_failed_tests() -> None:
    """Free what failed tests' tracebacks still hold, before a session broker stops.

    A failed test's frames hold its fixture values, the session's admin client among them. They
    stay alive in pytest's `sys.last_traceback` (the last failure) and, for every failure, in a
    reference cycle with the exception that only a full collection frees, which a big process
    may not run before it exits. A client kept that way reconnects to the stopped broker and
    logs "Connection refused" every second until the interpreter exits.
    """
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    gc.collect()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a running broker for this test session."""
    given = os.environ.get("KAFKAML_TEST_BOOTSTRAP")
    if given:
        yield given
        let_go_of_failed_tests()
        return
    port = int(os.environ.get("KAFKAML_TEST_BROKER_PORT", "19092"))
    try:
        with scratch_broker(port, PROJECT_ROOT / ".cache" / f"test-kafka-{port}") as bootstrap:
            yield bootstrap
            let_go_of_failed_tests()
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
class BrokerCertificates:
    """PEM files for a TLS broker: its CA, its key and chain, and a CA that signed nothing."""

    ca: Path
    keystore: Path
    untrusted_ca: Path


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _self_signed_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return key, cert


def make_broker_certificates(directory: Path) -> BrokerCertificates:
    """A CA and a broker certificate it signed for 127.0.0.1 and localhost (EC P-256, valid two
    days), plus an unrelated CA. Raises RuntimeError with openssl's message."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _self_signed_ca(directory, "kafkaml-test-ca")
    _, untrusted_ca = _self_signed_ca(directory, "untrusted-ca")
    key, request, cert = (directory / f"broker.{ext}" for ext in ("key", "csr", "pem"))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(request), "-subj", "/CN=localhost",
    )  # fmt: skip
    extensions = directory / "broker.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extensions),
    )  # fmt: skip
    keystore = directory / "broker-keystore.pem"  # Kafka's PEM keystore: PKCS#8 key, then chain
    keystore.write_text(key.read_text() + cert.read_text())
    return BrokerCertificates(ca=ca, keystore=keystore, untrusted_ca=untrusted_ca)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def broker_certificates(tmp_path_factory: pytest.TempPathFactory) -> BrokerCertificates:
    return make_broker_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def secure_kafka(
    tmp_path_factory: pytest.TempPathFactory, broker_certificates: BrokerCertificates
) -> Iterator[KafkaSettings]:
    """Client settings of a SASL_SSL (SCRAM-SHA-512) broker started for this session.

    The user `kafkaml` with a random password; the broker authenticates to itself as
    `kafkaml-broker`. Stopped at the end of the session.
    """
    password = secrets.token_urlsafe(16)
    given = os.environ.get("KAFKAML_TEST_SECURE_BROKER_PORT")
    port = int(given) if given else free_port()
    environment = {
        "KAFKAML_BROKER_CONTROLLER_PORT": str(port + 1 if given else free_port()),
        "KAFKAML_BROKER_SECURITY": "sasl_ssl",
        "KAFKAML_BROKER_SSL_KEYSTORE": str(broker_certificates.keystore),
        "KAFKAML_BROKER_SSL_CA": str(broker_certificates.ca),
        "KAFKAML_BROKER_SCRAM_USERS": (
            f"kafkaml-broker={secrets.token_urlsafe(16)} kafkaml={password}"
        ),
        "KAFKAML_BROKER_HEAP": "512m",
    }
    directory = tmp_path_factory.mktemp("secure-kafka")
    try:
        with scratch_broker(port, directory, environment) as bootstrap:
            yield KafkaSettings(
                bootstrap_servers=bootstrap,
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username="kafkaml",
                sasl_password=password,  # type: ignore[arg-type]  # pydantic coerces
                ssl_ca_location=str(broker_certificates.ca),
            )
            let_go_of_failed_tests()
    except LocalStackError as error:
        pytest.fail(f"could not start the SASL_SSL test broker: {error}", pytrace=False)


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
    backend_port = free_port()
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
