"""Weights over Kafka: a safe container, chunked records, and HMAC signatures.

Two topics per federated deployment (`exchange_topics`): the coordinator publishes each
round's global weights on `global`, the workers send their updates on `updates`. A message is
one envelope: metadata (kind, round, sender, sample count, metrics, the model code for a
global) and an optional weights blob. The blob is a container of NumPy `.npy` arrays written
with `allow_pickle=False` and read the same way, so a message can never run code. It is split
into records of at most `chunk_bytes`; every record carries the metadata and its signatures
in headers, and the blob's SHA-256 is part of what is signed.

Signatures are HMAC-SHA256 with a credential shared by one worker and the coordinator. An
update is signed by its sender; a global message is signed once per registered worker (each
worker checks the signature made with its own credential). Anything unsigned, signed by an
unknown name or with a wrong key is refused and logged (`Assembler.refused`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from kafkaml.frameworks.base import Array

log = logging.getLogger(__name__)

GLOBAL = "global"
UPDATE = "update"
DONE = "done"
COORDINATOR = "coordinator"
MAGIC = b"KMLW1"
DEFAULT_CHUNK_BYTES = 512 * 1024
_META = "kafkaml-fed-meta"
_SIGNATURES = "kafkaml-fed-sig"
_CHUNK = "kafkaml-fed-chunk"


class ExchangeError(ValueError):
    """A weights container or a record that cannot be read."""


@dataclass(frozen=True)
class ExchangeTopics:
    """The deployment's two exchange topics."""

    global_weights: str
    updates: str


def exchange_topics(deployment_id: int, prefix: str = "kafkaml-federated") -> ExchangeTopics:
    """The topic names of a federated deployment."""
    return ExchangeTopics(f"{prefix}-{deployment_id}-global", f"{prefix}-{deployment_id}-updates")


@dataclass
class Envelope:
    """One exchange message: what it is, from whom, for which round, and its weights."""

    kind: str
    round: int
    sender: str
    weights: list[Array] | None = None
    samples: int = 0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def encode_weights(weights: Sequence[Array]) -> bytes:
    """The arrays as one container: MAGIC, a count, then each `.npy` (no pickles) with its
    length."""
    parts = [MAGIC, struct.pack(">I", len(weights))]
    for array in weights:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        parts += [struct.pack(">Q", buffer.tell()), buffer.getvalue()]
    return b"".join(parts)


def decode_weights(blob: bytes) -> list[Array]:
    """The arrays of an `encode_weights` container. Raises ExchangeError for anything else,
    including object arrays (which would need pickle)."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise ExchangeError("not a kafkaml weights container")
    (count,) = struct.unpack_from(">I", blob, len(MAGIC))
    position = len(MAGIC) + 4
    arrays: list[Array] = []
    for index in range(count):
        if position + 8 > len(blob):
            raise ExchangeError(f"container truncated before array {index}")
        (size,) = struct.unpack_from(">Q", blob, position)
        position += 8
        try:
            arrays.append(np.load(io.BytesIO(blob[position : position + size]), allow_pickle=False))
        except ValueError as error:
            raise ExchangeError(f"array {index} is not a plain .npy array: {error}") from None
        position += size
    if position != len(blob):
        raise ExchangeError(f"{len(blob) - position} stray bytes after {count} arrays")
    return arrays


def sign(metadata: bytes, key: bytes) -> str:
    """HMAC-SHA256 of the metadata bytes (which include the blob's digest), hex."""
    return hmac.new(key, metadata, hashlib.sha256).hexdigest()


def publish(
    producer: Producer,
    topic: str,
    envelope: Envelope,
    keys: Mapping[str, bytes],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    flush_timeout_s: float = 60.0,
) -> int:
    """Produce the envelope as signed chunks and wait for delivery; the number of records.

    `keys` maps each signer name to its credential (the sender for an update, every worker
    for a global message). Raises ExchangeError when the broker does not confirm delivery.
    """
    blob = b"" if envelope.weights is None else encode_weights(envelope.weights)
    chunks = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]
    metadata = _metadata(envelope, blob, len(chunks))
    signatures = json.dumps({name: sign(metadata, key) for name, key in keys.items()}).encode()
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for index, chunk in enumerate(chunks):
        headers: list[tuple[str, str | bytes | None]] = [
            (_META, metadata),
            (_SIGNATURES, signatures),
            (_CHUNK, str(index).encode()),
        ]
        producer.produce(
            topic, chunk, envelope.sender.encode(), headers=headers, on_delivery=delivered
        )
        producer.poll(0)
    if producer.flush(flush_timeout_s) or failures:
        raise ExchangeError(f"{envelope.kind} of round {envelope.round} not delivered: {failures}")
    return len(chunks)


def _metadata(envelope: Envelope, blob: bytes, chunks: int) -> bytes:
    document = {
        "id": uuid.uuid4().hex,
        "kind": envelope.kind,
        "round": envelope.round,
        "sender": envelope.sender,
        "samples": envelope.samples,
        "metrics": envelope.metrics,
        "extra": envelope.extra,
        "chunks": chunks,
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    return json.dumps(document, sort_keys=True).encode()


Verifier = Callable[[Mapping[str, Any], Mapping[str, str], bytes], str | None]
"""(metadata, signatures, metadata bytes) -> None when accepted, else why refused."""


def verify_sender(credentials: Mapping[str, bytes]) -> Verifier:
    """The coordinator's check: the sender is a registered worker and signed with its key."""

    def verify(meta: Mapping[str, Any], signatures: Mapping[str, str], raw: bytes) -> str | None:
        sender = str(meta.get("sender"))
        key = credentials.get(sender)
        if key is None:
            return f"unknown worker {sender!r}"
        return _check(signatures.get(sender), raw, key, sender)

    return verify


def verify_coordinator(worker_id: str, key: bytes) -> Verifier:
    """A worker's check: sent by the coordinator, signed for this worker with its key."""

    def verify(meta: Mapping[str, Any], signatures: Mapping[str, str], raw: bytes) -> str | None:
        if meta.get("sender") != COORDINATOR:
            return (
                f"a {meta.get('kind')!r} message from {meta.get('sender')!r}, not the coordinator"
            )
        return _check(signatures.get(worker_id), raw, key, worker_id)

    return verify


def _check(signature: str | None, raw: bytes, key: bytes, name: str) -> str | None:
    if signature is None:
        return f"no signature for {name!r}"
    if not hmac.compare_digest(signature, sign(raw, key)):
        return f"bad signature for {name!r}"
    return None


@dataclass
class _Partial:
    meta: dict[str, Any]
    raw: bytes
    signatures: dict[str, str]
    chunks: dict[int, bytes] = field(default_factory=dict)


class Assembler:
    """Turns records back into verified envelopes, however their chunks interleave.

    `refused` lists (sender, reason) of every message refused; each is also logged.
    """

    def __init__(self, verify: Verifier) -> None:
        self.verify = verify
        self.partial: dict[str, _Partial] = {}
        self.refused: list[tuple[str, str]] = []

    def feed(self, records: Iterable[Message]) -> list[Envelope]:
        """The envelopes that the records complete, in completion order (refused ones left out)."""
        done: list[Envelope] = []
        for record in records:
            if record.error() is not None:
                continue
            envelope = self._add(record)
            if envelope is not None:
                done.append(envelope)
        return done

    def _add(self, record: Message) -> Envelope | None:
        headers = _headers(record)
        try:
            raw = headers[_META]
            meta = json.loads(raw)
            part = self.partial.setdefault(
                meta["id"], _Partial(meta, raw, json.loads(headers[_SIGNATURES] or b"{}"))
            )
            part.chunks[int(headers[_CHUNK] or b"-1")] = record.value() or b""
        except (KeyError, ValueError, TypeError) as error:
            self._refuse("?", f"malformed record at {record.topic()}/{record.offset()}: {error}")
            return None
        if len(part.chunks) < int(meta["chunks"]):
            return None
        del self.partial[meta["id"]]
        return self._complete(part)

    def _complete(self, part: _Partial) -> Envelope | None:
        meta = part.meta
        sender = str(meta.get("sender"))
        reason = self.verify(meta, part.signatures, part.raw)
        blob = b"".join(part.chunks[i] for i in sorted(part.chunks))
        if reason is None and hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            reason = "weights do not match their signed digest"
        if reason is not None:
            self._refuse(sender, reason)
            return None
        try:
            weights = decode_weights(blob) if blob else None
        except ExchangeError as error:
            self._refuse(sender, str(error))
            return None
        return Envelope(
            kind=str(meta["kind"]),
            round=int(meta["round"]),
            sender=sender,
            weights=weights,
            samples=int(meta.get("samples", 0)),
            metrics=dict(meta.get("metrics") or {}),
            extra=dict(meta.get("extra") or {}),
        )

    def _refuse(self, sender: str, reason: str) -> None:
        log.warning("refused an exchange message from %r: %s", sender, reason)
        self.refused.append((sender, reason))


def _headers(record: Message) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for header in record.headers() or []:
        name, value = header[0], header[1]
        found[str(name)] = value.encode() if isinstance(value, str) else bytes(value or b"")
    return found


def end_offset(consumer: Consumer, topic: str, timeout_s: float = 30.0) -> int:
    """The high watermark of partition 0 of `topic`, waiting out a topic just created (no
    leader yet). Raises KafkaException when the broker still refuses at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
            return int(high)
        except KafkaException as error:
            if time.monotonic() > deadline or not _settling(error.args[0]):
                raise
            time.sleep(0.2)  # the new partition's leader is being elected


def _settling(error: KafkaError) -> bool:
    return error.retriable() or error.code() in _NEW_TOPIC_CODES


_NEW_TOPIC_CODES = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
}


def parse_credentials(text: str) -> dict[str, str]:
    """`worker-a:secret,worker-b:secret` as {worker id: credential}. Raises ValueError when
    malformed."""
    credentials: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, secret = item.partition(":")
        if not sep or not name or not secret:
            raise ValueError("federated credentials must read `worker-id:secret,...`")
        credentials[name] = secret
    return credentials
