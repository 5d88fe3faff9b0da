"""Prometheus metrics of the MQTT bridge.

Each bridge gets its own registry, so several bridges in one process (tests, benchmarks) do not
collide; `__main__` serves it on `KAFKAML_MQTT_METRICS_PORT`.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

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
        self.ack_lag = GroupedHistogram(
            "kafkaml_mqtt_ack_lag_seconds",
            "Time from an MQTT message's receipt to its MQTT acknowledgement after Kafka's.",
            _LAG_BUCKETS,
            self.registry,
        )
        self.pending = Gauge(
            "kafkaml_mqtt_pending",
            "MQTT messages received and not acknowledged yet (waiting for Kafka).",
            registry=self.registry,
        )


class GroupedHistogram(Collector):
    """A Prometheus histogram that takes a count of equal observations in one call.

    The messages of one MQTT read share their receive time, so an ack batch of thousands has a
    few distinct lags; prometheus_client's Histogram would take (and lock) each one.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = tuple(sorted(float(b) for b in buckets))
        self._counts = [0] * (len(self._bounds) + 1)  # the last: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        """Record `count` observations of `value`."""
        index = bisect.bisect_left(self._bounds, value)  # the first bound >= value ("le")
        with self._lock:
            self._counts[index] += count
            self._sum += value * count

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(itertools.accumulate(self._counts)), self._sum
        buckets = [(str(b), c) for b, c in zip(self._bounds, counts, strict=False)]
        buckets.append(("+Inf", counts[-1]))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )
