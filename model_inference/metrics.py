"""Prometheus metrics of one inference replica.

Each service gets its own registry, so several services in one process (tests, benchmarks)
do not collide; `__main__` serves it on `KAFKAML_INFERENCE_METRICS_PORT`. Everything is updated
once per batch, never per record.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class InferenceMetrics:
    """Counters and histograms of the consume -> predict -> produce loop."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records_in = Counter(
            "kafkaml_inference_records_in",
            "Records consumed from the input topic.",
            registry=self.registry,
        )
        self.records_out = Counter(
            "kafkaml_inference_records_out",
            "Records produced, by destination: output, upper (early exit) or dlq.",
            ["destination"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "kafkaml_inference_dead_letters",
            "Undecodable input records sent to the dead-letter topic.",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "kafkaml_inference_batch_size",
            "Records per micro-batch.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "kafkaml_inference_processing_seconds",
            "Time from a micro-batch's consumption to the commit of its transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "kafkaml_inference_consumer_lag",
            "Records of the owned input partitions not consumed yet (high watermark - position).",
            registry=self.registry,
        )
        self.aborted = Counter(
            "kafkaml_inference_transactions_aborted",
            "Transactions aborted and rewound to the committed offsets.",
            registry=self.registry,
        )
        self.swaps = Counter(
            "kafkaml_inference_model_swaps",
            "Models swapped in between two batches.",
            registry=self.registry,
        )
        self.model_version = Gauge(
            "kafkaml_inference_model_version",
            "The model version being served (value 1, version in the label).",
            ["version"],
            registry=self.registry,
        )

    def serve(self, port: int) -> None:
        """Serve /metrics on `port` from a daemon thread."""
        start_http_server(port, registry=self.registry)

    def record_batch(self, consumed: int, output: int, upper: int, dead: int) -> None:
        self.records_in.inc(consumed)
        self.batch_size.observe(consumed)
        self.records_out.labels("output").inc(output)
        self.records_out.labels("upper").inc(upper)
        self.records_out.labels("dlq").inc(dead)
        self.dead_letters.inc(dead)

    def serving(self, version: str, previous: str | None) -> None:
        if previous is not None:
            self.model_version.remove(previous)
            self.swaps.inc()
        self.model_version.labels(version).set(1)
