"""Every client factory against a real SASL_SSL (SCRAM-SHA-512) broker: records flow with the
right credentials; a wrong password or an untrusted certificate raises KafkaSecurityError at
once instead of retrying forever."""

from __future__ import annotations

import gc
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from kafkaml import kafka
from kafkaml.datasources import RawSink
from kafkaml.kafka import (
    KafkaSecurityError,
    KafkaSettings,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    make_transactional_producer,
)
from kafkaml.local import BROKER_SCRIPT
from kafkaml.testing import BrokerCertificates, broker_environment, free_port

CLIENT_TYPES = (Producer, Consumer, AdminClient)


def _clients() -> set[int]:
    """The ids of the Kafka clients alive in this process (`type`, not `isinstance`: that would
    evaluate lazy objects, such as Django's admin site, other tests left behind)."""
    gc.collect()
    return {id(thing) for thing in gc.get_objects() if type(thing) in CLIENT_TYPES}


def _wrong_password(settings: KafkaSettings) -> KafkaSettings:
    return settings.model_copy(update={"sasl_password": SecretStr("not-the-password")})


def _untrusted(settings: KafkaSettings, certificates: BrokerCertificates) -> KafkaSettings:
    return settings.model_copy(update={"ssl_ca_location": str(certificates.untrusted_ca)})


def test_records_flow_over_sasl_ssl_with_the_right_credentials(
    secure_kafka: KafkaSettings,
) -> None:
    topic = f"secure-{uuid.uuid4().hex[:12]}"
    ensure_topics(make_admin(secure_kafka), [topic])
    producer = make_transactional_producer(secure_kafka, f"tx-{topic}")
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, value=str(i).encode())
    producer.commit_transaction(30)
    consumer = make_consumer(secure_kafka, isolation_level="read_committed")
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    try:
        for _ in range(60):
            values += [m.value() for m in consumer.consume(10, 1.0) if m.error() is None]  # type: ignore[misc]
            if len(values) >= 10:
                break
    finally:
        consumer.close()

    assert values == [str(i).encode() for i in range(10)]


@pytest.mark.parametrize("client", ["producer", "consumer", "admin", "transactional"])
def test_a_wrong_password_raises_a_security_error_naming_the_credentials(
    secure_kafka: KafkaSettings, client: str
) -> None:
    settings = _wrong_password(secure_kafka)
    make: Callable[[], object] = {
        "producer": lambda: make_producer(settings),
        "consumer": lambda: make_consumer(settings),
        "admin": lambda: make_admin(settings),
        "transactional": lambda: make_transactional_producer(settings, "tx-wrong"),
    }[client]

    alive_before = _clients()
    with pytest.raises(KafkaSecurityError) as raised:
        make()

    assert "SASL authentication error" in str(raised.value)
    assert "KAFKAML_KAFKA_SASL_USERNAME" in str(raised.value)
    assert secure_kafka.bootstrap_servers in str(raised.value)
    # Nothing keeps the refused client (and its threads, retrying and logging) alive.
    assert _clients() <= alive_before


def test_an_untrusted_broker_certificate_raises_a_security_error_naming_the_ca_setting(
    secure_kafka: KafkaSettings, broker_certificates: BrokerCertificates
) -> None:
    with pytest.raises(KafkaSecurityError) as raised:
        make_consumer(_untrusted(secure_kafka, broker_certificates))

    assert "certificate verify failed" in str(raised.value)
    assert "KAFKAML_KAFKA_SSL_CA_LOCATION" in str(raised.value)


def test_a_sink_with_a_wrong_password_fails_before_sending_anything(
    secure_kafka: KafkaSettings,
) -> None:
    with pytest.raises(KafkaSecurityError):
        RawSink(
            topic=f"secure-{uuid.uuid4().hex[:12]}",
            deployment_id=1,
            kafka_settings=_wrong_password(secure_kafka),
        )


def test_a_secured_client_rides_out_an_unreachable_cluster(
    secure_kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No broker at all is an outage, not a security error: the factory returns the client."""
    monkeypatch.setattr(kafka, "CONNECT_CHECK_S", 1.0)
    nowhere = secure_kafka.with_bootstrap(f"127.0.0.1:{free_port()}")

    producer = make_producer(nowhere)

    assert producer.flush(0) == 0


def test_a_sasl_ssl_broker_without_its_files_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **broker_environment(free_port(), tmp_path / "broker"),
        "KAFKAML_BROKER_SECURITY": "sasl_ssl",
        "KAFKAML_BROKER_SSL_KEYSTORE": str(tmp_path / "missing.pem"),
    }
    done = subprocess.run(
        ["bash", str(BROKER_SCRIPT), "start"], env=env, text=True, capture_output=True, check=False
    )

    assert done.returncode == 1
    assert "needs KAFKAML_BROKER_SSL_KEYSTORE, a readable PEM file" in done.stderr


def test_a_handshake_cut_off_by_a_lost_connection_is_retried_not_raised() -> None:
    # Seen under load: the group coordinator's connection dropped mid-handshake, reported by
    # librdkafka as an authentication error although the credentials were right.
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1", security_protocol="SASL_SSL", sasl_mechanism="PLAIN"
    )
    on_error = kafka._security_error_cb(settings)
    cut_off = KafkaError(
        KafkaError._AUTHENTICATION,
        "GroupCoordinator: SASL SCRAM-SHA-512 mechanism handshake failed: Local: Broker "
        "transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)",
    )
    on_error(cut_off)  # librdkafka retries this one
    refused = KafkaError(
        KafkaError._AUTHENTICATION,
        "SASL authentication error: Authentication failed during authentication due to invalid "
        "credentials with SASL mechanism SCRAM-SHA-512",
    )
    with pytest.raises(KafkaSecurityError):
        on_error(refused)
