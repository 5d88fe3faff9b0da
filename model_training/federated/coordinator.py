"""The coordinator: a federated deployment's training job.

Each round it asks who the deployment's workers are (`KeySource`: the backend's list of the
workers that joined, revoked ones left out), waits until `min_clients` of them are known,
publishes the global weights (signed for each of them), collects signed updates for that round
until `min_clients` workers have answered or `round_timeout_s` has passed (asking again every
`refresh_s`: a worker that joined meanwhile gets the round's weights, a revoked one's update is
refused), aggregates them (`aggregation.Strategy`), and reports the clients' weighted metrics
as the result's epoch. After the last round it publishes the final weights as `done`
(the workers stop) and uploads the model like any other result. It never sees a sample.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from kafkaml.federated import signing_key
from kafkaml.frameworks.base import Array
from model_training.federated.aggregation import FedAdam, fedavg, weighted_metrics
from model_training.federated.exchange import (
    COORDINATOR,
    DEFAULT_CHUNK_BYTES,
    DONE,
    GLOBAL,
    UPDATE,
    Assembler,
    Envelope,
    ExchangeTopics,
    end_offset,
    publish,
    verify_sender,
)
from model_training.modes import Job
from model_training.progress import EpochReporter
from model_training.reporting import JobApi, ReportingError

log = logging.getLogger(__name__)


class RoundFailedError(RuntimeError):
    """Fewer than `min_clients` workers answered a round within its timeout."""


@dataclass
class RoundResult:
    """One round's aggregate and who contributed to it."""

    weights: list[Array]
    clients: dict[str, int]
    train: dict[str, float]
    validation: dict[str, float]


KeySource = Callable[[], Mapping[str, bytes]]
"""The deployment's workers now: {worker id: signing key}."""


def static_keys(credentials: Mapping[str, str]) -> KeySource:
    """Fixed workers ({worker id: credential}), for a job without a backend."""
    keys = {name: signing_key(credential) for name, credential in credentials.items()}
    return lambda: keys


def backend_keys(api: JobApi) -> KeySource:
    """The workers that joined the job's deployment, as the backend lists them now; while the
    backend cannot be reached (JobApi's retries spent), the list it gave last."""
    known: dict[str, bytes] = {}

    def fetch() -> dict[str, bytes]:
        try:
            workers = api.get_json("federated-workers")
        except ReportingError as error:
            log.warning("the deployment's workers: kept the last list (%s)", error)
            return dict(known)
        known.clear()
        known.update({str(w["worker_id"]): bytes.fromhex(str(w["signing_key"])) for w in workers})
        return dict(known)

    return fetch


@dataclass
class Coordinator:
    """Publishes globals and collects updates on the deployment's exchange topics.

    `consumer` is a fresh consumer with no subscription; `keys` says who the workers are.
    """

    producer: Producer
    consumer: Consumer
    topics: ExchangeTopics
    keys: KeySource
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    refresh_s: float = 2.0
    # Tells this job's rounds from an earlier run's of the same deployment (same topics).
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    credentials: dict[str, bytes] = field(init=False, default_factory=dict)
    assembler: Assembler = field(init=False)

    def __post_init__(self) -> None:
        # The verifier reads `credentials` as it is when an update completes: kept current.
        self.assembler = Assembler(verify_sender(self.credentials))

    def start(self) -> None:
        """Read updates from the end of the updates topic as it is now: older runs' updates
        (and anything sent before this job) are never taken."""
        high = end_offset(self.consumer, self.topics.updates)
        self.consumer.assign([TopicPartition(self.topics.updates, 0, high)])

    def run_round(
        self,
        index: int,
        weights: list[Array],
        *,
        min_clients: int,
        timeout_s: float,
        plan: Mapping[str, Any],
    ) -> RoundResult:
        """Publish the global weights of round `index`, collect and aggregate the updates.

        Raises RoundFailedError when fewer than `min_clients` answer in `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        envelope = Envelope(GLOBAL, index, COORDINATOR, weights, extra={**plan, "run": self.run_id})
        self._refresh()
        while len(self.credentials) < min_clients and time.monotonic() < deadline:
            time.sleep(min(self.refresh_s, 1.0))  # poll the backend until enough have joined
            self._refresh()
        self._publish(envelope)
        log.info("round %d: global weights published for %s", index, sorted(self.credentials))
        updates = self._collect(envelope, min_clients, deadline)
        missing = sorted(set(self.credentials) - set(updates))
        if len(updates) < min_clients:
            raise RoundFailedError(
                f"round {index}: {len(updates)} of the {min_clients} updates needed arrived within "
                f"{timeout_s:g} s (from {sorted(updates) or 'no worker'}; missing {missing})"
            )
        if missing:
            log.warning("round %d: aggregated without %s (stragglers dropped)", index, missing)
        return _aggregate(updates)

    def finish(self, weights: list[Array]) -> None:
        """Publish the final weights as `done`: the workers stop."""
        self._refresh()
        self._publish(Envelope(DONE, -1, COORDINATOR, weights, extra={"run": self.run_id}))

    def _publish(self, envelope: Envelope) -> None:
        publish(self.producer, self.topics.global_weights, envelope, self.credentials,
                chunk_bytes=self.chunk_bytes)  # fmt: skip

    def _refresh(self) -> set[str]:
        """Take the key source's current workers; the ids that are new."""
        current = dict(self.keys())
        gone, new = set(self.credentials) - set(current), set(current) - set(self.credentials)
        if gone:
            log.warning("workers %s left the deployment (revoked): their updates are refused",
                        sorted(gone))  # fmt: skip
        self.credentials.clear()
        self.credentials.update(current)
        return new

    def _collect(
        self, envelope: Envelope, min_clients: int, deadline: float
    ) -> dict[str, Envelope]:
        index = envelope.round
        updates: dict[str, Envelope] = {}
        asked = time.monotonic()
        while len(updates) < min_clients and (remaining := deadline - time.monotonic()) > 0:
            if time.monotonic() - asked > self.refresh_s:
                asked = time.monotonic()
                if self._refresh():
                    self._publish(envelope)  # signed for the workers that joined meanwhile
                    log.info("round %d: published again for %s", index, sorted(self.credentials))
                for gone in set(updates) - set(self.credentials):
                    log.warning("round %d: dropped the update of revoked worker %s", index, gone)
                    del updates[gone]
            records = self.consumer.consume(500, timeout=min(0.2, remaining))
            for update in self.assembler.feed(records):
                if (
                    update.kind != UPDATE
                    or update.round != index
                    or update.extra.get("run") != self.run_id
                    or update.weights is None
                ):
                    log.info(
                        "ignored a %s of round %d from %s", update.kind, update.round, update.sender
                    )
                elif update.samples < 1:
                    log.warning(
                        "round %d: refused an update of %d samples from %s",
                        index,
                        update.samples,
                        update.sender,
                    )
                else:
                    log.info(
                        "round %d: update from %s (%d samples)",
                        index,
                        update.sender,
                        update.samples,
                    )
                    updates[update.sender] = update
        return updates


def _aggregate(updates: Mapping[str, Envelope]) -> RoundResult:
    clients = list(updates.values())
    samples = [update.samples for update in clients]
    weights = fedavg([update.weights or [] for update in clients], samples)
    return RoundResult(
        weights=weights,
        clients={update.sender: update.samples for update in clients},
        train=weighted_metrics([u.metrics.get("train", {}) for u in clients], samples),
        validation=weighted_metrics([u.metrics.get("validation", {}) for u in clients], samples),
    )


def round_plan(
    framework: str,
    imports: str,
    code: str,
    *,
    batch_size: int,
    local_epochs: int = 1,
    mu: float = 0.0,
    min_data: int = 1,
    data_restrictions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What each round's global message tells the workers: the model's code, how to train
    locally, and the criteria their datasets must meet."""
    return {
        "framework": framework,
        "imports": imports,
        "code": code,
        "batch_size": batch_size,
        "local_epochs": local_epochs,
        "mu": mu,
        "min_data": min_data,
        "data_restrictions": dict(data_restrictions or {}),
    }


def train_federated(job: Job, coordinator: Coordinator) -> None:
    """Run the deployment's rounds and upload the final model; raises RoundFailedError."""
    spec = job.spec
    options = spec.federated
    code = spec.models[0]
    model = job.framework.build(code.imports, code.code)
    plan = round_plan(
        spec.framework,
        code.imports,
        code.code,
        batch_size=spec.batch_size,
        local_epochs=options.local_epochs,
        mu=options.mu if options.strategy == "fedprox" else 0.0,
        min_data=options.min_data,
        data_restrictions=options.data_restrictions,
    )
    for sink in job.sinks:
        sink.running()
    reporter = EpochReporter(job.sinks)
    coordinator.start()
    weights = model.get_weights()
    server = FedAdam(options.server_learning_rate) if options.strategy == "fedadam" else None
    for index in range(options.rounds):
        result = coordinator.run_round(
            index,
            weights,
            min_clients=options.min_clients,
            timeout_s=options.round_timeout_s,
            plan=plan,
        )
        weights = result.weights if server is None else server.step(weights, result.weights)
        log.info("round %d aggregated from %s", index, result.clients)
        reporter(index, result.train, result.validation)
    model.set_weights(weights)
    coordinator.finish(weights)
    history = reporter.histories[0]
    metrics = {
        "train": history.train,
        "validation": history.validation,
        "test": {},
        "confusion_matrix": None,
        "training_time_s": round(time.monotonic() - job.started, 3),
        "seed": job.seed,
    }
    job.sinks[0].finish(model.save(), job.framework.artifact_format, metrics)
