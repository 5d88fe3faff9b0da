"""Recording control messages as datasources, at least once and without duplicates.

Each control record is posted to the backend's datasource endpoint, which is idempotent on
(topic, partition, offset); its offset is committed only after the backend accepted it. While
the backend is down (no answer, 502/503/504, 408, 429) the logger retries the same record, so
nothing is lost, and a record delivered again after a restart or rebalance is recorded once.

No record can stall the logger. A record that is not a bounded, valid control message
(`ControlMessage.from_record`), one the backend refuses (4xx), and one the backend fails on
(500) `max_failures` times while its health check answers, is a dead letter: copied unchanged
to the dead-letter topic with the reason and its source in headers, logged, counted, and
skipped. See docs/control-logger.md.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry, Counter

from kafkaml.protocol import ControlMessage, ControlMessageError
from kafkaml.rest import BackendError, RestClient

log = logging.getLogger(__name__)

DATASOURCE_PATH = "/api/jobs/datasources"
HEALTH_PATH = "/api/health"
# The header names of the inference's dead letters, so one tool reads both.
ERROR_HEADER = "kafkaml-error"
SOURCE_HEADER = "kafkaml-source"
# Why a record became a dead letter: the `reason` label of the metric and a header.
REASON_HEADER = "kafkaml-dead-letter-reason"
MALFORMED, REFUSED, FAILED = "malformed", "refused", "failed"
# How much of a reason goes into a header and a log line.
_REASON_CHARS = 2000


class BackendRefusedError(BackendError):
    """The backend refused the logger's credentials (401/403): retrying cannot help."""


class BackendUnavailableError(BackendError):
    """The backend did not answer, or answered 408/429/502/503/504: the same record is tried
    again, as long as it takes."""


class BackendFailedError(BackendUnavailableError):
    """The backend answered 500 (or another 5xx), or took the request and did not answer in
    time: tried again a bounded number of times."""


@dataclass(frozen=True)
class Recorded:
    """The backend's answer: `created` is False when the record had been recorded before, and
    `refused` holds the reason when the backend rejected the message for good (4xx) or kept
    failing on it (then `failed` is True)."""

    created: bool
    refused: str | None = None
    failed: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """How long one record is retried: waits double from 0.2 s up to `retry_max_s`; after
    `max_failures` answers of 500 while the backend's health check passes, it is a dead letter."""

    retry_max_s: float = 5.0
    max_failures: int = 5


class LoggerMetrics:
    """The control logger's Prometheus counters, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "kafkaml_control_logger_records",
            "Control records settled, by outcome: recorded, duplicate or dead_letter.",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "kafkaml_control_logger_dead_letters",
            "Control records sent to the dead-letter topic, by reason: malformed, refused "
            "(4xx) or failed (500 after the bounded tries).",
            ["reason"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "kafkaml_control_logger_backend_errors",
            "Attempts to record that the backend did not answer or answered 408/429/5xx.",
            registry=self.registry,
        )


class DeadLetters:
    """Copies records that cannot be recorded to the dead-letter topic, and counts them.

    `send` waits for the broker's acknowledgement, so a record's offset is committed only once
    its dead letter is stored; it raises KafkaException when the broker does not take it.
    """

    def __init__(
        self, producer: Producer, topic: str, metrics: LoggerMetrics, timeout_s: float = 30.0
    ) -> None:
        self.producer, self.topic, self.metrics = producer, topic, metrics
        self.timeout_s = timeout_s

    def send(self, record: Message, reason: str, error: str) -> None:
        """Produce `record` unchanged to the dead-letter topic; `reason` is one of MALFORMED,
        REFUSED, FAILED and `error` says what went wrong."""
        errors: list[KafkaError] = []
        headers = [
            *(record.headers() or []),
            (ERROR_HEADER, error[:_REASON_CHARS].encode()),
            (REASON_HEADER, reason.encode()),
            (SOURCE_HEADER, _where(record).encode()),
        ]
        self.producer.produce(
            self.topic,
            value=record.value(),
            key=record.key(),
            headers=headers,
            on_delivery=lambda failure, _record: errors.append(failure) if failure else None,
        )
        if self.producer.flush(self.timeout_s) or errors:
            raise KafkaException(
                errors[0] if errors else f"no acknowledgement from {self.topic} in time"
            )
        self.metrics.dead_letters.labels(reason=reason).inc()
        self.metrics.records.labels(outcome="dead_letter").inc()


class BackendClient:
    """Posts control records to the backend's datasource endpoint with the service token.

    One attempt per call: `record_control_message` retries, and stops retrying on shutdown.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.rest = RestClient(base_url, token, timeout_s=timeout_s, session=session)
        self.url = self.rest.url(DATASOURCE_PATH)

    def healthy(self) -> bool:
        """Whether the backend's health check (it answers and reaches its database) passes."""
        try:
            self.rest.request("GET", HEALTH_PATH)
        except BackendError:
            return False
        return True

    def record(self, message: ControlMessage, record: Message) -> Recorded:
        """Record one control message; raises BackendUnavailableError (BackendFailedError for a
        500) or BackendRefusedError."""
        try:
            response = self.rest.request("POST", DATASOURCE_PATH, json=_body(message, record))
        except BackendError as error:
            return _refusal(error)
        return Recorded(created=response.status_code == 201)


def _refusal(error: BackendError) -> Recorded:
    """A refusal for good (any other 4xx); raises for what retrying may fix or cannot fix."""
    status, extra = error.status, error.extra
    if status is None and isinstance(error.__cause__, requests.ReadTimeout):
        # It took the request and did not answer in time: maybe this message, counted like a 500.
        raise BackendFailedError(f"backend did not answer in time: {error}") from error
    if status is None:
        raise BackendUnavailableError(f"backend unreachable: {error}", extra=extra) from error
    if status in (401, 403):
        message = f"backend refused the service token: {error}"
        raise BackendRefusedError(message, status=status, extra=extra) from error
    if status in (408, 429, 502, 503, 504):
        message = f"backend answered {status}"
        raise BackendUnavailableError(message, status=status, extra=extra) from error
    if status >= 500:
        raise BackendFailedError(str(error), status=status, extra=extra) from error
    return Recorded(created=False, refused=str(error))


def _body(message: ControlMessage, record: Message) -> dict[str, Any]:
    _kind, timestamp_ms = record.timestamp()
    sent_at = (
        datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat()
        if timestamp_ms and timestamp_ms > 0
        else None
    )
    return {
        "deployment_id": message.deployment_id,
        "control_topic": record.topic(),
        "partition": record.partition(),
        "offset": record.offset(),
        "sent_at": sent_at,
        "value": message.to_value(),
    }


def record_control_message(
    record: Message,
    backend: BackendClient,
    dead_letters: DeadLetters,
    stop: threading.Event,
    policy: RetryPolicy = RetryPolicy(),
) -> bool:
    """Record one control record, retrying while the backend is unavailable.

    Returns True when the record is settled (recorded, recorded before, or a dead letter) and
    its offset may be committed; False when `stop` was set first. Raises BackendRefusedError
    (bad service token) and KafkaException (the dead-letter topic did not take a record).
    """
    try:
        message = ControlMessage.from_record(record.key(), record.value() or b"")
    except ControlMessageError as error:
        log.warning("malformed control message at %s, a dead letter: %s", _where(record), error)
        dead_letters.send(record, MALFORMED, str(error))
        return True
    outcome = _post(message, record, backend, dead_letters.metrics, stop, policy)
    if outcome is None:
        return False
    if outcome.refused is not None:
        reason = FAILED if outcome.failed else REFUSED
        log.warning(
            "backend %s the control message at %s, a dead letter: %s",
            "kept failing on" if outcome.failed else "refused",
            _where(record),
            outcome.refused[:_REASON_CHARS],
        )
        dead_letters.send(record, reason, outcome.refused)
        return True
    log.info(
        "recorded deployment %d's datasource from offset %d%s",
        message.deployment_id,
        record.offset(),
        "" if outcome.created else " (recorded before)",
    )
    dead_letters.metrics.records.labels(
        outcome="recorded" if outcome.created else "duplicate"
    ).inc()
    return True


def _post(
    message: ControlMessage,
    record: Message,
    backend: BackendClient,
    metrics: LoggerMetrics,
    stop: threading.Event,
    policy: RetryPolicy,
) -> Recorded | None:
    """The backend's answer for good, or None when `stop` was set first."""
    delay, failures = 0.2, 0
    while not stop.is_set():
        try:
            return backend.record(message, record)
        except BackendFailedError as error:
            failures += 1
            # A backend that fails on everything (its database is down) is unavailable, not
            # refusing this message: only a healthy backend's failures make a dead letter.
            if failures >= policy.max_failures and backend.healthy():
                return Recorded(created=False, refused=f"{error} ({failures} tries)", failed=True)
            log.warning(
                "%s (try %d); retrying %s in %.1f s", error, failures, _where(record), delay
            )
        except BackendUnavailableError as error:
            log.warning("%s; retrying %s in %.1f s", error, _where(record), delay)
        metrics.backend_errors.inc()
        stop.wait(delay)
        delay = min(delay * 2, policy.retry_max_s)
    return None


def _where(record: Message) -> str:
    return f"{record.topic()}[{record.partition()}]@{record.offset()}"


def run(
    consumer: Consumer,
    backend: BackendClient,
    dead_letters: DeadLetters,
    topic: str,
    stop: threading.Event,
    policy: RetryPolicy = RetryPolicy(),
) -> None:
    """Consume `topic` until `stop` is set, recording each control message before committing.

    Raises BackendRefusedError (bad service token) and KafkaException for fatal consumer errors
    and a dead-letter topic that does not take a record.
    """
    consumer.subscribe([topic])
    log.info(
        "recording the control messages of %s at %s (dead letters to %s)",
        topic,
        backend.url,
        dead_letters.topic,
    )
    while not stop.is_set():
        record = consumer.poll(0.5)
        if record is None:
            continue
        if (error := record.error()) is not None:
            if error.fatal():
                raise KafkaException(record.error())
            log.warning("consumer error: %s", record.error())
            continue
        if not record_control_message(record, backend, dead_letters, stop, policy):
            return
        _commit(consumer, record)


def _commit(consumer: Consumer, record: Message) -> None:
    try:
        consumer.commit(message=record, asynchronous=False)
    except KafkaException as error:
        # Lost the partition (e.g. a rebalance while the backend was down): the record comes
        # back to whoever owns it now, and the idempotent endpoint records it once.
        log.warning("could not commit offset %d: %s", record.offset(), error)
