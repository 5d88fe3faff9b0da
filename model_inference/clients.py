"""The Kafka clients of one replica, per direction (input, output, upper) as in Kafka-ML.

A direction's brokers are, in order: the `KAFKAML_INFERENCE_<DIRECTION>_BOOTSTRAP` override, the
spec's `<direction>_bootstrap`, `KAFKAML_KAFKA_BOOTSTRAP_SERVERS`. Security settings are the same
for every cluster. A replica that starts while the broker is away waits for it (up to
`KAFKAML_INFERENCE_OUTAGE_S`) rather than exiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException, Producer

from kafkaml.kafka import (
    KafkaSettings,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from model_inference.answers import Routes
from model_inference.delivery import AT_LEAST_ONCE_COMMIT_INTERVAL_MS, Delivery, DeliveryFailures
from model_inference.metrics import InferenceMetrics
from model_inference.service import InferenceService, decoder_for
from model_inference.settings import InferenceSettings
from model_inference.spec import InferenceSpec, SpecSource
from model_inference.swap import (
    ModelLoader,
    ModelSwapper,
    limit_model_threads,
    load_framework_model,
    load_serving_model,
)
from model_inference.transactions import Producers

log = logging.getLogger(__name__)
T = TypeVar("T")
_START_RETRY_PAUSE_S = 1.0


def build_service(
    settings: InferenceSettings,
    kafka: KafkaSettings,
    source: SpecSource,
    loader: ModelLoader = load_framework_model,
) -> tuple[InferenceSpec, InferenceService]:
    """Fetch the spec and model, create the clients and missing topics, build the service.

    The service is not subscribed yet. Raises what the source, the loader or Kafka raise.
    """
    spec, model = load_serving_model(source, loader)
    limit_model_threads(spec.framework, settings.model_threads)
    clusters = cluster_settings(kafka, settings, spec)
    consumer = make_input_consumer(settings, clusters["input"], spec.inference_id, spec.delivery)
    routes = routes_for(settings, spec)
    until_broker_answers(
        "creating the output topics",
        lambda: ensure_route_topics(clusters, routes, spec.input_topic, consumer),
        settings.outage_s,
    )
    failures = DeliveryFailures()
    service = InferenceService(
        consumer=consumer,
        producers=make_producers(settings, clusters, spec.inference_id, spec.delivery, failures),
        routes=routes,
        decode=decoder_for(spec.input_format, spec.input_config),
        model=model,
        swapper=ModelSwapper(source, loader, spec, settings.spec_poll_s),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        metrics=InferenceMetrics(),
        transaction_timeout_s=settings.transaction_timeout_ms / 1000,
        delivery=spec.delivery,
        delivery_failures=failures,
        outage_s=settings.outage_s,
        renew_producer=lambda: make_transactional(settings, clusters["input"], spec.inference_id),
    )
    return spec, service


def group_id(inference_id: int) -> str:
    """The consumer group every replica of an inference joins."""
    return f"kafkaml-inference-{inference_id}"


def transactional_id(inference_id: int, replica: str) -> str:
    """Stable per replica, so a restarted replica fences the transaction its predecessor left."""
    return f"kafkaml-inference-{inference_id}-{replica}"


def routes_for(settings: InferenceSettings, spec: InferenceSpec) -> Routes:
    """Output, upper and dead-letter topics of the inference."""
    return Routes(
        output_topic=spec.output_topic,
        dlq_topic=settings.dlq_topic or f"{spec.input_topic}.dlq",
        upper_topic=spec.upper_topic if spec.early_exit else None,
        limit=spec.limit if spec.early_exit else None,
    )


def cluster_settings(
    kafka: KafkaSettings, settings: InferenceSettings, spec: InferenceSpec
) -> dict[str, KafkaSettings]:
    """Client settings of the "input", "output" and "upper" directions."""
    return {
        "input": kafka.with_bootstrap(settings.input_bootstrap or spec.input_bootstrap),
        "output": kafka.with_bootstrap(settings.output_bootstrap or spec.output_bootstrap),
        "upper": kafka.with_bootstrap(settings.upper_bootstrap or spec.upper_bootstrap),
    }


def same_cluster(a: KafkaSettings, b: KafkaSettings) -> bool:
    """Whether two bootstrap lists name the same brokers (order and spaces aside)."""

    def brokers(settings: KafkaSettings) -> set[str]:
        return {host.strip() for host in settings.bootstrap_servers.split(",") if host.strip()}

    return brokers(a) == brokers(b)


def make_input_consumer(
    settings: InferenceSettings,
    input_cluster: KafkaSettings,
    inference_id: int,
    delivery: Delivery = "exactly-once",
) -> Consumer:
    """The group consumer of the input topic.

    It reads only committed records: an upper tier's input is a lower tier's transactional
    output, and aborted batches of a crashed lower replica must not be answered. Exactly-once
    commits its offsets in the transactions; at-least-once stores the offsets of delivered
    batches and lets the consumer commit them every second, on a rebalance and on close.
    """
    commits: dict[str, object] = {}
    if delivery == "at-least-once":
        commits = {"enable_auto_commit": True, "enable_auto_offset_store": False,
                   "auto_commit_interval_ms": AT_LEAST_ONCE_COMMIT_INTERVAL_MS}  # fmt: skip
    return make_consumer(
        input_cluster,
        group_id(inference_id),
        isolation_level="read_committed",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 5, 500),
        **commits,
    )


def make_producers(
    settings: InferenceSettings,
    clusters: dict[str, KafkaSettings],
    inference_id: int,
    delivery: Delivery = "exactly-once",
    failures: DeliveryFailures | None = None,
) -> Producers:
    """The transactional producer on the input cluster, reused by every direction on it.

    At-least-once: a plain idempotent producer in its place, which reports only failed
    deliveries, to `failures`. Raises KafkaException when the transactions cannot be
    initialised (a fatal error, or the broker stayed away longer than `settings.outage_s`).
    """
    if delivery == "at-least-once":
        transactional = make_producer(
            clusters["input"], linger_ms=settings.linger_ms,
            on_delivery=failures, delivery_report_only_error=True,
        )  # fmt: skip
    else:
        transactional = make_transactional(settings, clusters["input"], inference_id)
    others: dict[str, Producer] = {}

    def direction(name: str) -> Producer:
        if same_cluster(clusters[name], clusters["input"]):
            return transactional
        key = clusters[name].bootstrap_servers
        if key not in others:
            others[key] = make_producer(clusters[name], linger_ms=settings.linger_ms)
        return others[key]

    return Producers(transactional, direction("output"), direction("upper"))


def make_transactional(
    settings: InferenceSettings, input_cluster: KafkaSettings, inference_id: int
) -> Producer:
    """The replica's transactional producer, initialised: it fences any earlier producer of the
    same replica. Waits for an absent broker up to `settings.outage_s`; raises KafkaException.
    """
    transactional = make_producer(
        input_cluster,
        transactional_id=transactional_id(inference_id, settings.replica_name),
        transaction_timeout_ms=settings.transaction_timeout_ms,
        linger_ms=settings.linger_ms,
        # A transaction begun right after the previous commit meets CONCURRENT_TRANSACTIONS
        # while the broker writes the commit markers (a few ms); librdkafka's default 100 ms
        # retry backoff then stalls every batch. Measured at 10,000 msg/s: p99 of send_offsets
        # 14 ms with a 10 ms backoff, 5 ms with 1 ms (p90 110 ms with the default).
        retry_backoff_ms=1,
        retry_backoff_max_ms=20,
    )
    until_broker_answers(
        "initialising the transactions",
        lambda: transactional.init_transactions(settings.transaction_timeout_ms / 1000),
        settings.outage_s,
    )
    return transactional


def ensure_route_topics(
    clusters: dict[str, KafkaSettings], routes: Routes, input_topic: str, consumer: Consumer
) -> None:
    """Create missing output, upper and dead-letter topics, partitioned like the input topic.

    Raises KafkaException when a cluster refuses a creation.
    """
    metadata = consumer.list_topics(input_topic, timeout=30)
    topic = metadata.topics.get(input_topic)
    partitions = len(topic.partitions) if topic is not None and topic.partitions else 1
    wanted = [("output", routes.output_topic), ("input", routes.dlq_topic)]
    if routes.upper_topic:
        wanted.append(("upper", routes.upper_topic))
    for direction, name in wanted:
        ensure_topics(make_admin(clusters[direction]), [name], partitions=partitions)


def until_broker_answers(what: str, call: Callable[[], T], outage_s: float) -> T:
    """`call()`, called again while it raises a KafkaException that is not fatal (the broker is
    away), for at most `outage_s`; returns its value. Raises the last KafkaException."""
    deadline = time.monotonic() + outage_s
    while True:
        try:
            return call()
        except KafkaException as exception:
            error: Any = exception.args[0]
            if getattr(error, "fatal", lambda: False)() or time.monotonic() >= deadline:
                raise
            log.warning("%s failed, trying again: %s", what, error)
            time.sleep(_START_RETRY_PAUSE_S)
