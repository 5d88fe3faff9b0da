"""Prometheus metrics of the MQTT bridge.

Each bridge gets its own registry, so several bridges in one process (tests, benchmarks) do not
collide; `__main__` serves it on `KAFKAML_MQTT_METRICS_PORT`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BridgeMetrics:
    """Messages in, records out, dead letters and the MQTT receive -> Kafka ack lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages_in = Counter(
            "kafkaml_mqtt_messages_in",
            "MQTT messages received, by route (topic filter).",
            ["route"],
            registry=self.registry,
        )
        self.redelivered = Counter(
            "kafkaml_mqtt_messages_redelivered",
            "MQTT messages the broker sent again (DUP flag): the bridge may produce them twice.",
            registry=self.registry,
        )
        self.records_out = Counter(
            "kafkaml_mqtt_records_out",
            "Records Kafka confirmed, by route, the dead-letter topic counted under 'dlq'.",
            ["route"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "kafkaml_mqtt_dead_letters",
            "MQTT messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.ack_lag = Histogram(
            "kafkaml_mqtt_ack_lag_seconds",
            "Time from an MQTT message's receipt to its MQTT acknowledgement after Kafka's.",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "kafkaml_mqtt_pending",
            "MQTT messages received and not acknowledged yet (waiting for Kafka).",
            registry=self.registry,
        )
