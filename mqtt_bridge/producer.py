"""The bridge's Kafka producer: idempotent, acks=all, and never giving up on a record.

A record that Kafka does not confirm must not be acknowledged over MQTT, and a record the
producer dropped after a timeout would stay unacknowledged until the bridge reconnects; so
librdkafka retries for as long as the broker is away (message.timeout.ms=0) and only permanent
errors reach the delivery callback.
"""

from __future__ import annotations

from confluent_kafka import Producer

from kafkaml.kafka import KafkaSettings, make_producer


def make_bridge_producer(settings: KafkaSettings, linger_ms: int) -> Producer:
    """A producer for the bridge (idempotent, acks=all, unlimited delivery time)."""
    return make_producer(settings, linger_ms=linger_ms, message_timeout_ms=0)
