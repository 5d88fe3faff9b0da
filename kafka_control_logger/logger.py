"""Recording control messages as datasources, at least once and without duplicates.

Each control record is posted to the backend's datasource endpoint, which is idempotent on
(topic, partition, offset); its offset is committed only after the backend accepted it. While
the backend is down the logger retries the same record, so nothing is lost, and a record
delivered again after a restart or rebalance is recorded once. A record that is not a control
message is logged with its offset and skipped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from confluent_kafka import Consumer, KafkaException, Message

from kafkaml.protocol import ControlMessage, ControlMessageError
from kafkaml.rest import BackendError, RestClient

log = logging.getLogger(__name__)

DATASOURCE_PATH = "/api/jobs/datasources"


class BackendRefusedError(BackendError):
    """The backend refused the logger's credentials (401/403): retrying cannot help."""


class BackendUnavailableError(BackendError):
    """The backend did not answer, or answered 408/429/5xx: the same record is tried again."""


@dataclass(frozen=True)
class Recorded:
    """The backend's answer: `created` is False when the record had been recorded before, and
    `refused` holds the reason when the backend rejected the message for good (4xx)."""

    created: bool
    refused: str | None = None


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

    def record(self, message: ControlMessage, record: Message) -> Recorded:
        """Record one control message; raises BackendUnavailableError or BackendRefusedError."""
        try:
            response = self.rest.request("POST", DATASOURCE_PATH, json=_body(message, record))
        except BackendError as error:
            return _refusal(error)
        return Recorded(created=response.status_code == 201)


def _refusal(error: BackendError) -> Recorded:
    """A refusal for good (any other 4xx); raises for what retrying may fix or cannot fix."""
    status, extra = error.status, error.extra
    if status is None:
        raise BackendUnavailableError(f"backend unreachable: {error}", extra=extra) from error
    if status in (401, 403):
        message = f"backend refused the service token: {error}"
        raise BackendRefusedError(message, status=status, extra=extra) from error
    if status in (408, 429) or status >= 500:
        message = f"backend answered {status}"
        raise BackendUnavailableError(message, status=status, extra=extra) from error
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
    record: Message, backend: BackendClient, stop: threading.Event, retry_max_s: float = 5.0
) -> bool:
    """Record one control record, retrying while the backend is unavailable.

    Returns True when the record is settled (recorded, recorded before, refused, or not a
    control message) and its offset may be committed; False when `stop` was set first.
    """
    try:
        message = ControlMessage.from_record(record.key(), record.value() or b"")
    except ControlMessageError as error:
        log.warning(
            "skipping a malformed control message at %s[%d]@%d: %s",
            record.topic(),
            record.partition(),
            record.offset(),
            error,
        )
        return True
    delay = 0.2
    while not stop.is_set():
        try:
            outcome = backend.record(message, record)
        except BackendUnavailableError as error:
            log.warning("%s; retrying offset %d in %.1f s", error, record.offset(), delay)
            stop.wait(delay)
            delay = min(delay * 2, retry_max_s)
            continue
        if outcome.refused:
            log.warning(
                "backend refused the control message at %s[%d]@%d: %s",
                record.topic(),
                record.partition(),
                record.offset(),
                outcome.refused,
            )
        else:
            log.info(
                "recorded deployment %d's datasource from offset %d%s",
                message.deployment_id,
                record.offset(),
                "" if outcome.created else " (recorded before)",
            )
        return True
    return False


def run(
    consumer: Consumer,
    backend: BackendClient,
    topic: str,
    stop: threading.Event,
    retry_max_s: float = 5.0,
) -> None:
    """Consume `topic` until `stop` is set, recording each control message before committing.

    Raises BackendRefusedError (bad service token) and KafkaException for fatal consumer errors.
    """
    consumer.subscribe([topic])
    log.info("recording the control messages of %s at %s", topic, backend.url)
    while not stop.is_set():
        record = consumer.poll(0.5)
        if record is None:
            continue
        if record.error() is not None:
            if record.error().fatal():
                raise KafkaException(record.error())
            log.warning("consumer error: %s", record.error())
            continue
        if not record_control_message(record, backend, stop, retry_max_s):
            return
        _commit(consumer, record)


def _commit(consumer: Consumer, record: Message) -> None:
    try:
        consumer.commit(message=record, asynchronous=False)
    except KafkaException as error:
        # Lost the partition (e.g. a rebalance while the backend was down): the record comes
        # back to whoever owns it now, and the idempotent endpoint records it once.
        log.warning("could not commit offset %d: %s", record.offset(), error)
