"""Kafka client settings and the factories every component builds its clients with.

Nobody else assembles a raw librdkafka configuration: security settings, the tuned defaults and
per-use overrides are merged here, so a change (a new SASL mechanism, a better fetch setting)
reaches every producer and consumer in the project at once.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
_Client = TypeVar("_Client", Producer, Consumer, AdminClient)

# Measured on the 2-core machine kind (DESIGN.md, bench/kafka_throughput.py): librdkafka's default
# fetch.queue.backoff.ms (1000 ms) caps a consumer at ~0.2 M msg/s; 10 ms lets it pass 1 M msg/s.
# Latency-sensitive producers (inference) override linger.ms. compression.type comes from
# KafkaSettings.compression_type (docs/compression.md).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "enable.idempotence": True,
    "acks": "all",
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "fetch.queue.backoff.ms": 10,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 10_485_760,
    "queued.max.messages.kbytes": 262_144,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
}


class KafkaSettings(BaseSettings):
    """How every kafkaml component reaches the Kafka cluster."""

    model_config = env_config("KAFKAML_KAFKA_")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="Kafka security.protocol for every client."
    )
    sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_ca_location: str | None = Field(
        default=None,
        description="Path of the CA certificate that signed the brokers' certificates.",
    )
    ssl_certificate_location: str | None = Field(
        default=None, description="Path of the client certificate for mutual TLS."
    )
    ssl_key_location: str | None = Field(
        default=None, description="Path of the client private key for mutual TLS."
    )
    ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of the client private key."
    )
    client_id: str = Field(default="kafkaml", description="client.id reported to the brokers.")
    compression_type: Compression = Field(
        default="none",
        description="compression.type of every producer (none, gzip, snappy, lz4, zstd); "
        "none and gzip are the codecs every Kafka client reads without extra packages "
        "(docs/compression.md).",
    )

    def client_config(self) -> dict[str, Any]:
        """The connection part of a librdkafka configuration, shared by every client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        return config

    def with_bootstrap(self, bootstrap_servers: str | None) -> KafkaSettings:
        """These settings pointed at other brokers (Kafka-ML's per-direction brokers)."""
        if not bootstrap_servers:
            return self
        return self.model_copy(update={"bootstrap_servers": bootstrap_servers})


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


# librdkafka reports a refused SASL login and a failed TLS handshake (an untrusted or mismatched
# certificate) as errors it retries forever; every client would then wait out its timeouts.
_SECURITY_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
# How long a new client of a secured cluster waits for its first metadata before it leaves an
# unreachable cluster to its caller (who rides out outages as before).
CONNECT_CHECK_S = 5.0


class KafkaSecurityError(RuntimeError):
    """The brokers refused this client's SASL credentials, or the TLS handshake failed.

    A configuration error (wrong password or mechanism, an untrusted certificate, a wrong CA
    file) that retrying does not fix; `reason` is librdkafka's message.
    """

    def __init__(self, bootstrap_servers: str, reason: str, *, tls: bool) -> None:
        hint = (
            "check KAFKAML_KAFKA_SSL_CA_LOCATION (the CA that signed the brokers' certificates) "
            "and, for mutual TLS, KAFKAML_KAFKA_SSL_CERTIFICATE_LOCATION and _KEY_LOCATION"
            if tls
            else "check KAFKAML_KAFKA_SASL_USERNAME, _PASSWORD and _MECHANISM"
        )
        super().__init__(f"Kafka at {bootstrap_servers} refused this client: {reason}; {hint}")
        self.bootstrap_servers = bootstrap_servers
        self.reason = reason


def _security_error_cb(settings: KafkaSettings) -> Callable[[KafkaError], None]:
    """An `error_cb` that raises KafkaSecurityError out of the client's next poll, consume or
    flush; other errors (an unreachable broker) stay librdkafka's to retry."""

    def on_error(error: KafkaError) -> None:
        if error.code() in _SECURITY_ERRORS and not _interrupted(error):
            tls = error.code() == KafkaError._SSL
            raise KafkaSecurityError(settings.bootstrap_servers, error.str(), tls=tls)

    return on_error


# A connection lost in the middle of a handshake is reported as an authentication error too
# ("... mechanism handshake failed: Local: Broker transport failure ..."): librdkafka retries it
# and the next handshake succeeds, so it is not the configuration's fault.
_INTERRUPTED = ("Broker transport failure", "Disconnected", "Connection reset")


def _interrupted(error: KafkaError) -> bool:
    return any(text in error.str() for text in _INTERRUPTED)


def _with_security_check(settings: KafkaSettings, config: dict[str, Any]) -> dict[str, Any]:
    if settings.security_protocol == "PLAINTEXT" or "error_cb" in config:
        return config
    return {**config, "error_cb": _security_error_cb(settings)}


def _check_connection(settings: KafkaSettings, client: Producer | Consumer | AdminClient) -> None:
    """On a secured cluster, wait up to CONNECT_CHECK_S for the first metadata.

    Raises KafkaSecurityError (through the error callback that `poll` serves) as soon as the
    brokers refuse the credentials or the certificate; returns when metadata arrived or the
    cluster stayed unreachable (an outage is the caller's to ride out, not an error here).
    """
    if settings.security_protocol == "PLAINTEXT":
        return
    deadline = time.monotonic() + CONNECT_CHECK_S
    while time.monotonic() < deadline:
        try:
            client.list_topics(timeout=0.5)
            return
        except KafkaException:
            client.poll(0)


def _checked(settings: KafkaSettings, create: Callable[[], _Client]) -> _Client:
    """A client from `create`, once `_check_connection` passed. A refused client is let go of
    (a consumer closed first): the error's traceback would otherwise keep it, and its threads
    retrying and logging every second, for as long as the error is kept."""
    client = create()
    try:
        _check_connection(settings, client)
    except KafkaSecurityError as error:
        if isinstance(client, Consumer):
            client.close()
        del client
        error.__context__ = None  # the KafkaException it was raised over: its frames hold client
        raise error.with_traceback(None) from None
    return client


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """The full configuration `make_producer` uses: connection, tuned defaults, overrides."""
    return {
        **settings.client_config(),
        **PRODUCER_DEFAULTS,
        "compression.type": settings.compression_type,
        **_dotted(overrides),
    }


def consumer_config(
    settings: KafkaSettings, group_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """The full configuration `make_consumer` uses; a fresh private group id when none is given."""
    group = group_id or f"kafkaml-{uuid.uuid4()}"
    return {
        **settings.client_config(),
        **CONSUMER_DEFAULTS,
        "group.id": group,
        **_dotted(overrides),
    }


def make_producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    """A producer with the tuned defaults; keyword overrides use `_` for `.` (linger_ms=5).

    Raises KafkaSecurityError, here or from a later poll or flush, when the brokers refuse
    its credentials or certificate.
    """
    config = _with_security_check(settings, producer_config(settings, **overrides))
    return _checked(settings, lambda: Producer(config))


def make_transactional_producer(
    settings: KafkaSettings, transactional_id: str, **overrides: Any
) -> Producer:
    """A producer for exactly-once pipelines, with its transactions already initialised."""
    producer = make_producer(settings, transactional_id=transactional_id, **overrides)
    producer.init_transactions(30)
    return producer


def make_consumer(
    settings: KafkaSettings, group_id: str | None = None, **overrides: Any
) -> Consumer:
    """A consumer with the tuned defaults: manual commits, earliest reset, fast fetch backoff.

    Raises KafkaSecurityError, here or from a later poll or consume, when the brokers refuse
    its credentials or certificate.
    """
    config = _with_security_check(settings, consumer_config(settings, group_id, **overrides))
    # Not yet subscribed or assigned: a poll serves the error callback and takes no record.
    return _checked(settings, lambda: Consumer(config))


def make_admin(settings: KafkaSettings, **overrides: Any) -> AdminClient:
    """An admin client for topic management; raises KafkaSecurityError as the others do."""
    config = _with_security_check(settings, {**settings.client_config(), **_dotted(overrides)})
    return _checked(settings, lambda: AdminClient(config))


def ensure_topics(
    admin: AdminClient,
    names: Iterable[str],
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet; existing topics are left as they are.

    Raises KafkaException when the cluster refuses a creation for another reason, and
    KafkaSecurityError when it refuses the admin client's credentials meanwhile.
    """
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        for name in names
    ]
    if not new:
        return
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    # Polled while waiting, so that the error callback can raise instead of a silent wait.
    while concurrent.futures.wait(list(futures.values()), timeout=0.1).not_done:
        admin.poll(0)
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


# confluent-kafka's callback settings keep their underscores (error_cb, on_delivery).
_CALLBACK_KEYS = frozenset(
    {
        "error_cb",
        "throttle_cb",
        "stats_cb",
        "oauth_cb",
        "log_cb",
        "on_delivery",
        "on_commit",
        "logger",
    }
)


def _dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword overrides in Python form (`linger_ms`) to librdkafka keys (`linger.ms`)."""
    return {
        key if key in _CALLBACK_KEYS else key.replace("_", "."): value
        for key, value in overrides.items()
    }
