"""The bridge: each MQTT message is mapped, produced to Kafka, and acknowledged to the MQTT
broker only after Kafka confirmed the record (at-least-once end to end).

paho's network thread hands the PUBLISHes of each read over (`receive_many`, or `on_message` for
one that paho handled itself), which only queues them; the `run` loop maps what has arrived in
batches (one codec call per route), produces, and serves the producer's delivery callbacks.
Acknowledgements go out in the order the messages came in (MQTT 3.1.1 4.6 asks for PUBACKs in
order), so a record confirmed early on one partition waits for the older ones.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from mqtt_bridge.connection import Received
from mqtt_bridge.mapping import (
    ERROR_HEADER,
    ROUTE_HEADER,
    TOPIC_HEADER,
    KafkaRecord,
    Route,
)
from mqtt_bridge.metrics import BridgeMetrics

log = logging.getLogger(__name__)
Ack = Callable[[int, int], Any]
AckMany = Callable[[list[int]], Any]
ROUTE_CACHE = 100_000  # MQTT topics whose route is remembered


class BridgeError(RuntimeError):
    """The bridge cannot go on without losing a message; the message says why."""


@dataclass(slots=True)
class _Pending:
    """One received MQTT message on its way to Kafka."""

    mid: int
    qos: int
    session: int
    received: float
    mqtt_topic: str
    payload: bytes
    done: bool = False
    dead_letter: str | None = None  # the reason, once it goes to the dead-letter topic


class Bridge:
    """Maps and forwards MQTT messages; `ack(mid, qos)` is paho's `Client.ack`, and
    `ack_many(mids)` (BridgeClient's) acknowledges QoS 1 messages in one write."""

    def __init__(
        self,
        routes: Sequence[Route],
        producer: Producer,
        dead_letter_topic: str,
        ack: Ack,
        metrics: BridgeMetrics | None = None,
        ack_many: AckMany | None = None,
    ) -> None:
        self.routes = list(routes)
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.ack = ack
        self.ack_many = ack_many
        self.metrics = metrics or BridgeMetrics()
        self._pending: deque[_Pending] = deque()
        self._inbox: deque[_Pending] = deque()  # received, not produced yet
        self._out_counters: dict[str, Any] = {}
        self._out_counts: dict[str, int] = {}  # confirmed since the last _ack_ready, per route
        self._route_of: dict[str, int] = {}  # MQTT topic -> route index (-1: none matches)
        self._fatal: str | None = None
        self._lock = threading.Lock()
        # A new MQTT connection makes older message ids meaningless: the broker resends
        # whatever was not acknowledged, with new ids.
        self._session = 0

    # paho callbacks (network thread) ------------------------------------------------------

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT connection refused: %s", reason)
            return
        with self._lock:
            self._session += 1
        filters = [(route.spec.topic_filter, 1) for route in self.routes]
        log.info("MQTT connected (session present: %s); subscribing to %s", flags, filters)
        client.subscribe(filters)

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.receive(message.topic, message.payload, message.mid, message.qos, message.dup)

    # the work ------------------------------------------------------------------------------

    def receive(self, mqtt_topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        """Take one MQTT message in; `run` maps and produces it, its ack follows Kafka's."""
        self.receive_many([(mqtt_topic, payload, mid, qos, dup)])

    def receive_many(self, messages: list[Received]) -> None:
        """Take MQTT messages in, in order of arrival (BridgeClient's `on_messages`)."""
        session, now = self._session, time.monotonic()
        entries = [
            _Pending(mid, qos, session, now, topic, payload)
            for topic, payload, mid, qos, _ in messages
        ]
        with self._lock:
            self._pending.extend(entries)
            self._inbox.extend(entries)
        self.metrics.pending.inc(len(entries))
        redelivered = sum([message[4] for message in messages])
        if redelivered:
            self.metrics.redelivered.inc(redelivered)

    def forward_received(self, limit: int = 10_000) -> int:
        """Map and produce the messages received so far (up to `limit`); how many there were.

        Messages of one route are mapped as one batch (one codec call for their samples).
        """
        with self._lock:
            if limit >= len(self._inbox):
                taken = list(self._inbox)
                self._inbox.clear()
            else:
                taken = [self._inbox.popleft() for _ in range(limit)]
        if not taken:
            return 0
        by_route: dict[int, list[_Pending]] = {}
        route_of = self._route_of
        for pending in taken:
            route_index = route_of.get(pending.mqtt_topic)
            if route_index is None:
                route_index = self._match(pending.mqtt_topic)
            messages = by_route.get(route_index)
            if messages is None:
                messages = by_route[route_index] = []
            messages.append(pending)
        for route_index, messages in by_route.items():
            if route_index < 0:
                for pending in messages:
                    self.metrics.messages_in.labels("(none)").inc()
                    reason = f"no route matches topic {pending.mqtt_topic!r}"
                    self._dead_letter("(none)", reason, pending)
                continue
            self._forward_route(self.routes[route_index], messages)
        return len(taken)

    def _match(self, mqtt_topic: str) -> int:
        """The index of the first route whose filter matches the topic (-1: none), remembered
        per topic (paho's filter matching is Python string work, and devices repeat topics)."""
        if len(self._route_of) >= ROUTE_CACHE:
            self._route_of.clear()
        index = next((i for i, route in enumerate(self.routes) if route.matches(mqtt_topic)), -1)
        self._route_of[mqtt_topic] = index
        return index

    def _forward_route(self, route: Route, messages: list[_Pending]) -> None:
        label = route.spec.topic_filter
        self.metrics.messages_in.labels(label).inc(len(messages))
        topics = [pending.mqtt_topic for pending in messages]
        results = route.map_batch(topics, [pending.payload for pending in messages])
        produce, delivered = self.producer.produce, self._delivered
        for pending, result in zip(messages, results, strict=True):
            if type(result) is not KafkaRecord:
                self._dead_letter(label, str(result), pending)
                continue
            try:  # _produce's first try, inline: this loop runs once per message
                produce(
                    result.topic,
                    result.value,
                    result.key,
                    headers=result.headers,
                    on_delivery=functools.partial(delivered, pending, label),
                )
            except BufferError:
                self._produce(result, pending, label)

    def _dead_letter(self, route: str, reason: str, pending: _Pending) -> None:
        """Send the message's MQTT payload to the dead-letter topic, the reason in a header."""
        mqtt_topic = pending.mqtt_topic
        log.warning("dead letter from %s: %s", mqtt_topic, reason)
        device = mqtt_topic.rsplit("/", 1)[-1]
        record = KafkaRecord(
            self.dead_letter_topic,
            device.encode(),
            pending.payload,
            [
                (TOPIC_HEADER, mqtt_topic.encode()),
                (ROUTE_HEADER, route.encode()),
                (ERROR_HEADER, reason.encode()),
            ],
        )
        pending.dead_letter = reason
        self._produce(record, pending, "dlq")

    def _produce(self, record: KafkaRecord, pending: _Pending, label: str) -> None:
        delivered = functools.partial(self._delivered, pending, label)
        while True:
            try:
                self.producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=record.headers,
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the producer's queue is full: wait for Kafka (backpressure)
                self.producer.poll(0.1)

    # producer callbacks (the run loop's thread) ------------------------------------------

    def _delivered(
        self, pending: _Pending, label: str, error: KafkaError | None, message: Message
    ) -> None:
        if error is not None:
            # Retriable errors never get here (message.timeout.ms=0 retries forever): this
            # record cannot be written, so its message goes to the dead-letter topic instead.
            if pending.dead_letter is not None:  # it was the dead letter
                # Acknowledging would lose the message and waiting would hold every later
                # ack: stop, so the supervisor restarts the bridge and the broker resends.
                self._fatal = f"the dead-letter topic refused a record: {error.str()}"
                return
            reason = f"Kafka refused the record for {message.topic()}: {error.str()}"
            self._dead_letter(label, reason, pending)
            return
        self._out_counts[label] = self._out_counts.get(label, 0) + 1
        if pending.dead_letter is not None:
            self.metrics.dead_letters.labels(_reason_kind(pending.dead_letter)).inc()
        pending.done = True  # acknowledged by `run` after the poll that served this report

    def _records_out(self, label: str) -> Any:
        """The route's records_out counter (labels() looked up once per route, not per record)."""
        counter = self._out_counters.get(label)
        if counter is None:
            counter = self._out_counters[label] = self.metrics.records_out.labels(label)
        return counter

    def _ack_ready(self) -> None:
        """Acknowledge, in receive order, every message whose record Kafka confirmed (and count
        the confirmed records, per route, once per poll rather than per record)."""
        for label, count in self._out_counts.items():
            self._records_out(label).inc(count)
        self._out_counts.clear()
        now = time.monotonic()
        mids: list[int] = []
        acknowledged = 0
        lags: dict[float, int] = {}  # receive time -> messages (a read's messages share it)
        with self._lock:
            pending, session = self._pending, self._session
            while pending and pending[0].done:
                entry = pending.popleft()
                acknowledged += 1
                if entry.session != session or entry.qos == 0:
                    continue
                if entry.qos == 1 and self.ack_many is not None:
                    mids.append(entry.mid)
                else:
                    self.ack(entry.mid, entry.qos)
                lags[entry.received] = lags.get(entry.received, 0) + 1
            if mids and self.ack_many is not None:
                self.ack_many(mids)
        for received, count in lags.items():
            self.metrics.ack_lag.observe(now - received, count)
        if acknowledged:
            self.metrics.pending.dec(acknowledged)

    def pending(self) -> int:
        """Messages received and not acknowledged yet."""
        with self._lock:
            return len(self._pending)

    def run(self, stop: threading.Event, poll_s: float = 0.002) -> None:
        """Forward received messages and serve Kafka's delivery reports until `stop` is set,
        then forward what was received and wait for Kafka's confirmations.

        Raises BridgeError when a dead letter cannot be written (nothing more is acknowledged).
        """
        while not stop.is_set():
            if self._fatal is not None:
                raise BridgeError(self._fatal)
            if self.forward_received():
                self.producer.poll(0)
            else:
                self.producer.poll(poll_s)
            self._ack_ready()  # the whole poll's confirmations at once
        self.forward_received(limit=len(self._inbox))
        self.producer.flush()
        self._ack_ready()


def _reason_kind(reason: str) -> str:
    """A short, bounded label for the dead-letter counter."""
    if reason.startswith("the payload is not JSON") or "not an object" in reason:
        return "not_json"
    if reason.startswith("field"):
        return "field"
    if reason.startswith("no route"):
        return "no_route"
    if reason.startswith("Kafka refused"):
        return "kafka_refused"
    return "other"
