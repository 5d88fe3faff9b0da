"""The bridge: each MQTT message is mapped, produced to Kafka, and acknowledged to the MQTT
broker only after Kafka confirmed the record (at-least-once end to end).

One thread does it all (`run`): it reads what has arrived from MQTT (the client hands the
PUBLISHes of each read to `receive_many`, or one that paho handled itself to `on_message`), maps
each route's messages as one batch (one codec call), produces, serves the producer's delivery
reports and acknowledges. While messages wait for Kafka it wakes once per tick (`tick_s`) and
does all of that for whatever came meanwhile: a wake-up serves many messages, and no message
is handed from one thread to another. Acknowledgements go out in the order the messages came
in (MQTT 3.1.1 4.6 asks for PUBACKs in order), so a record confirmed early on one partition
waits for the older ones.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from mqtt_bridge.connection import BridgeClient, Received
from mqtt_bridge.mapping import (
    ERROR_HEADER,
    ROUTE_HEADER,
    TOPIC_HEADER,
    KafkaRecord,
    Route,
)
from mqtt_bridge.metrics import BridgeMetrics

log = logging.getLogger(__name__)
ROUTE_CACHE = 100_000  # MQTT topics whose route is remembered
TICK_S = 0.010  # while messages wait for Kafka, how often the loop wakes up
IDLE_S = 0.5  # with nothing waiting: the longest wait for MQTT (and for `stop` to be seen)


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
    """Maps and forwards the MQTT messages that `client` receives; it sets the client's
    `on_connect`, `on_message` and `on_messages`, and `run` drives the client's network loop
    in the calling thread (do not `loop_start` it)."""

    def __init__(
        self,
        routes: Sequence[Route],
        producer: Producer,
        dead_letter_topic: str,
        client: BridgeClient,
        metrics: BridgeMetrics | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        self.routes = list(routes)
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.client = client
        self.metrics = metrics or BridgeMetrics()
        self.tick_s = tick_s
        self._pending: deque[_Pending] = deque()  # received, not acknowledged, in that order
        # Produced when the producer's queue has room again (it was full: Kafka is slow or
        # away); the MQTT broker's in-flight window bounds it.
        self._backlog: deque[tuple[KafkaRecord, _Pending, str]] = deque()
        self._out_counters: dict[str, Any] = {}
        self._out_counts: dict[str, int] = {}  # confirmed since the last _ack_ready, per route
        self._route_of: dict[str, int] = {}  # MQTT topic -> route index (-1: none matches)
        self._fatal: str | None = None
        # A new MQTT connection makes older message ids meaningless: the broker resends
        # whatever was not acknowledged, with new ids.
        self._session = 0
        client.on_connect = self.on_connect
        client.on_message = self.on_message
        client.on_messages = self.receive_many

    # client callbacks (within `run`'s client.serve) -----------------------------------------

    def on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT connection refused: %s", reason)
            return
        self._session += 1
        filters = [(route.spec.topic_filter, 1) for route in self.routes]
        log.info("MQTT connected (session present: %s); subscribing to %s", flags, filters)
        client.subscribe(filters)

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.receive(message.topic, message.payload, message.mid, message.qos, message.dup)

    # the work ------------------------------------------------------------------------------

    def receive(self, mqtt_topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        """Take one MQTT message in: map and produce it; its ack follows Kafka's."""
        self.receive_many([(mqtt_topic, payload, mid, qos, dup)])

    def receive_many(self, messages: list[Received]) -> None:
        """Take MQTT messages in, in order of arrival (BridgeClient's `on_messages`): map
        them, each route's messages as one batch (one codec call for their samples), and
        produce them; each one's ack follows Kafka's confirmation of its record."""
        session, now = self._session, time.monotonic()
        by_route: dict[int, list[_Pending]] = {}
        route_of = self._route_of
        for topic, payload, mid, qos, _ in messages:
            route_index = route_of.get(topic)
            if route_index is None:
                route_index = self._match(topic)
            entry = _Pending(mid, qos, session, now, topic, payload)
            batch = by_route.get(route_index)
            if batch is None:
                batch = by_route[route_index] = []
            batch.append(entry)
            self._pending.append(entry)
        self.metrics.pending.inc(len(messages))
        redelivered = sum([message[4] for message in messages])
        if redelivered:
            self.metrics.redelivered.inc(redelivered)
        for route_index, batch in by_route.items():
            if route_index < 0:
                for pending in batch:
                    self.metrics.messages_in.labels("(none)").inc()
                    reason = f"no route matches topic {pending.mqtt_topic!r}"
                    self._dead_letter("(none)", reason, pending)
                continue
            self._forward_route(self.routes[route_index], batch)

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
        produce, delivered, backlog = self.producer.produce, self._delivered, self._backlog
        for pending, result in zip(messages, results, strict=True):
            if type(result) is not KafkaRecord:
                self._dead_letter(label, str(result), pending)
            elif backlog:  # behind the records that wait for room, in order
                backlog.append((result, pending, label))
            else:
                try:  # _produce, inline: this loop runs once per message
                    produce(
                        result.topic,
                        result.value,
                        result.key,
                        headers=result.headers,
                        on_delivery=functools.partial(delivered, pending, label),
                    )
                except BufferError:
                    self._hold(result, pending, label)

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
        """Produce now, or after the records that wait for room in the producer's queue."""
        if not self._backlog:
            try:
                self._send(record, pending, label)
                return
            except BufferError:
                pass
        self._hold(record, pending, label)

    def _send(self, record: KafkaRecord, pending: _Pending, label: str) -> None:
        """Hand one record to the producer; raises BufferError when its queue is full."""
        self.producer.produce(
            record.topic,
            record.value,
            record.key,
            headers=record.headers,
            on_delivery=functools.partial(self._delivered, pending, label),
        )

    def _hold(self, record: KafkaRecord, pending: _Pending, label: str) -> None:
        """Keep a record that the producer's full queue refused, behind any held before."""
        if not self._backlog:
            log.warning(
                "the producer's queue is full (Kafka is slow or away): records wait in the "
                "bridge, in order, until it has room"
            )
        self._backlog.append((record, pending, label))

    def _produce_backlog(self) -> None:
        """Produce the records that waited for room, in order, while there is room."""
        backlog = self._backlog
        while backlog:
            record, pending, label = backlog[0]
            try:
                self._send(record, pending, label)
            except BufferError:
                return
            backlog.popleft()
        log.info("the producer's queue has room again: no record waits in the bridge")

    # producer callbacks (within `run`'s poll) ----------------------------------------------

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
        pending, session, client = self._pending, self._session, self.client
        while pending and pending[0].done:
            entry = pending.popleft()
            acknowledged += 1
            if entry.session != session or entry.qos == 0:
                continue
            if entry.qos == 1:
                mids.append(entry.mid)
            else:
                if mids:  # the QoS 1 acks before it go first
                    client.ack_many(mids)
                    mids = []
                client.ack(entry.mid, entry.qos)
            lags[entry.received] = lags.get(entry.received, 0) + 1
        if mids:
            client.ack_many(mids)
        for received, count in lags.items():
            self.metrics.ack_lag.observe(now - received, count)
        if acknowledged:
            self.metrics.pending.dec(acknowledged)

    def pending(self) -> int:
        """Messages received and not acknowledged yet."""
        return len(self._pending)

    def run(self, stop: threading.Event) -> None:
        """Bridge until `stop` is set, then produce what was received, wait for Kafka's
        confirmations, acknowledge and disconnect from MQTT (`run` returns with the client
        closed, whether it returns or raises).

        With nothing waiting for Kafka the loop blocks on the MQTT socket, so a message
        after a quiet spell is handled at once; while messages wait, it wakes once per tick.
        Raises BridgeError when a dead letter cannot be written (nothing more is acknowledged).
        """
        poll = self.producer.poll
        try:
            next_tick = 0.0
            while not stop.is_set():
                if self._fatal is not None:
                    raise BridgeError(self._fatal)
                next_tick = self._read_mqtt(next_tick)  # maps and produces what came
                poll(0)  # the delivery reports mark messages done
                if self._backlog:
                    self._produce_backlog()
                self._ack_ready()  # the whole poll's confirmations at once
            self._finish()
        finally:
            self.client.close()

    def _read_mqtt(self, next_tick: float) -> float:
        """Serve the MQTT connection once: with messages waiting for Kafka at `next_tick`
        (sleeping until then) and without waiting for the socket, else as soon as something
        arrives (within IDLE_S). Returns the time of the next tick."""
        if self._pending:
            rest = next_tick - time.monotonic()
            if rest > 0:
                time.sleep(rest)
            next_tick = time.monotonic() + self.tick_s
            self.client.serve(0)
            return next_tick
        self.client.serve(IDLE_S)
        return time.monotonic() + self.tick_s

    def _finish(self) -> None:
        """Produce the backlog, wait for every confirmation and acknowledge (no more reads)."""
        while self._backlog:
            self.producer.poll(0.1)
            self._produce_backlog()
        self.producer.flush()
        if self._fatal is not None:
            raise BridgeError(self._fatal)
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
