"""The federated worker: runs at a data owner's site, next to the data, and trains there.

It reads its own dataset once (announced by a sink's control message on its own control
topic, like any training data), then follows the deployment's global topic: for each round it
loads the global weights into the model built from the deployment's code, trains for
`local_epochs` on its data (with FedProx's proximal term when `mu` > 0), and sends back only
the weights, its sample count and its metrics, signed with its credential. It stops at the
coordinator's `done`. A worker whose dataset does not match the deployment (input shape,
`data_restrictions`, `min_data`) takes no part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from kafkaml.frameworks import get_framework
from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import ControlMessage, read_ranges
from model_training.control import wait_for_control
from model_training.dataset import Split, collect, split
from model_training.federated.exchange import (
    DEFAULT_CHUNK_BYTES,
    DONE,
    GLOBAL,
    UPDATE,
    Assembler,
    Envelope,
    ExchangeTopics,
    end_offset,
    publish,
    verify_coordinator,
)

log = logging.getLogger(__name__)


class NotSelectedError(ValueError):
    """The worker's dataset does not fit the deployment (shape, restrictions or size)."""


@dataclass(frozen=True)
class LocalDataset:
    """The worker's data, split once, and what its sink said about it."""

    parts: Split
    samples: int
    restrictions: dict[str, Any]


def load_dataset(
    consumer: Consumer,
    kafka: KafkaSettings,
    control_topic: str,
    dataset_id: int,
    *,
    timeout_s: float,
    seed: int,
    memory_limit_bytes: int = 2 * 2**30,
) -> LocalDataset:
    """Wait for the dataset's control message (any time in the topic's history) and read it.

    Raises ControlTimeoutError, EmptyStreamError, DecodeError or RangeReadError.
    """
    announced = wait_for_control(
        consumer, control_topic, dataset_id, datetime.fromtimestamp(0, UTC), timeout_s
    )
    message: ControlMessage = announced.message
    batches = read_ranges(kafka, message.ranges, message.input_format, message.input_config)
    expected = sum(topic_range.size for topic_range in message.ranges)
    samples = collect(batches, expected, memory_limit_bytes=memory_limit_bytes)
    log.info("dataset %d: %d samples from %r", dataset_id, len(samples), message.topic)
    parts = split(samples, message.validation_rate, 0.0, seed)
    return LocalDataset(parts, len(parts.train), dict(message.dataset_restrictions))


@dataclass
class Worker:
    """Follows one deployment's rounds; `run` returns when the coordinator is done."""

    worker_id: str
    key: bytes
    producer: Producer
    consumer: Consumer
    topics: ExchangeTopics
    data: LocalDataset
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    rounds_trained: list[tuple[str, int]] = field(default_factory=list)  # (run, round)
    _model: Any = None

    def run(
        self, idle_timeout_s: float | None = None, still_training: Callable[[], bool] | None = None
    ) -> None:
        """Train each announced round (the newest one when several are waiting) until `done`.

        When no global message has come for `idle_timeout_s` (None: wait forever), it asks
        `still_training` (the backend, for a joined deployment): on True it waits again, on
        False it returns (the deployment ended without it). Raises NotSelectedError when the
        dataset does not fit the deployment, TimeoutError on an idle timeout without
        `still_training`.
        """
        history_end = end_offset(self.consumer, self.topics.global_weights)
        self.consumer.assign([TopicPartition(self.topics.global_weights, 0, OFFSET_BEGINNING)])
        assembler = Assembler(verify_coordinator(self.worker_id, self.key))
        pending: Envelope | None = None
        heard = time.monotonic()
        while True:
            # A short poll: an empty one means caught up with the topic, so train the newest round.
            records = self.consumer.consume(500, timeout=0.2)
            history = bool(records) and (records[-1].offset() or 0) < history_end
            for envelope in assembler.feed(records):
                heard = time.monotonic()
                if envelope.kind == DONE and history:
                    pending = None  # an earlier run of this deployment ended before we started
                elif envelope.kind == DONE:
                    log.info("coordinator done after rounds %s", self.rounds_trained)
                    return
                elif envelope.kind == GLOBAL and _key(envelope) not in self.rounds_trained:
                    pending = envelope
            if pending is not None and not records and not assembler.partial:
                self._train_round(pending)
                pending = None
            elif idle_timeout_s is not None and time.monotonic() - heard > idle_timeout_s:
                if still_training is None:
                    raise TimeoutError(f"no global weights for {idle_timeout_s:g} s")
                if not still_training():
                    log.info("the deployment is no longer training: leaving it")
                    return
                heard = time.monotonic()

    def _train_round(self, envelope: Envelope) -> None:
        plan = envelope.extra
        model = self._model_for(plan)
        model.set_weights(envelope.weights or [])
        model.set_proximal(float(plan.get("mu", 0.0)))
        log.info("round %d: training %d local epoch(s)", envelope.round, plan["local_epochs"])
        framework = get_framework(str(plan["framework"]))
        batch_size = int(plan["batch_size"])
        parts = self.data.parts
        history = framework.fit(
            model,
            batch_source(framework.name, parts.train.arrays(), batch_size),
            fit_kwargs={"epochs": int(plan["local_epochs"])},
            validation=(
                batch_source(framework.name, parts.validation.arrays(), batch_size)
                if parts.validation is not None
                else None
            ),
        )
        metrics = {
            "train": {name: values[-1] for name, values in history.train.items()},
            "validation": {name: values[-1] for name, values in history.validation.items()},
        }
        update = Envelope(
            UPDATE, envelope.round, self.worker_id, model.get_weights(), self.data.samples, metrics,
            extra={"run": plan.get("run")},
        )  # fmt: skip
        publish(
            self.producer,
            self.topics.updates,
            update,
            {self.worker_id: self.key},
            chunk_bytes=self.chunk_bytes,
        )
        self.rounds_trained.append(_key(envelope))
        log.info(
            "round %d: update sent (%d samples) %s", envelope.round, self.data.samples, metrics
        )

    def _model_for(self, plan: Mapping[str, Any]) -> Any:
        if self._model is None:
            framework = get_framework(str(plan["framework"]))
            self._model = framework.build(str(plan.get("imports", "")), str(plan["code"]))
            check_selected(self._model, self.data, plan)
        return self._model


def _key(envelope: Envelope) -> tuple[str, int]:
    return str(envelope.extra.get("run")), envelope.round


def check_selected(model: Any, data: LocalDataset, plan: Mapping[str, Any]) -> None:
    """Raise NotSelectedError unless the dataset fits the model's input shape, carries every
    `data_restrictions` entry of the deployment with the same value, and has `min_data`
    training samples."""
    wanted = [dim for dim in model.summary().input_shape[1:]]
    x, _ = data.parts.train.arrays()
    if len(wanted) != x.ndim - 1 or any(
        w not in (None, g) for w, g in zip(wanted, x.shape[1:], strict=False)
    ):
        raise NotSelectedError(f"samples of shape {list(x.shape[1:])} do not fit input {wanted}")
    restrictions = dict(plan.get("data_restrictions") or {})
    differing = {k: v for k, v in restrictions.items() if data.restrictions.get(k) != v}
    if differing:
        raise NotSelectedError(f"the dataset does not meet the restrictions {differing}")
    if data.samples < int(plan.get("min_data", 1)):
        raise NotSelectedError(f"{data.samples} samples, fewer than min_data {plan['min_data']}")


def batch_source(framework: str, arrays: tuple[Array, Array | None], batch_size: int) -> Any:
    x, y = arrays
    assert y is not None
    if framework == "pytorch" and y.shape[1:] == (1,):
        y = y.reshape(len(y))  # PyTorch losses want (batch,) class targets, as in modes.py
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)

    def source() -> Any:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

    return source
