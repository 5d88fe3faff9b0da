"""Per-epoch reporting: one epoch counter for the whole job, per-result histories.

A job may call `fit` many times (incremental windows, pseudo-label rounds); epochs are numbered
on across those calls so each result's epoch list reads as one training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from kafkaml.frameworks import History, Metrics
from model_training.reporting import ResultSink

log = logging.getLogger(__name__)

# Splits one epoch's metrics into one (train, validation) pair per result (early-exit chains).
Splitter = Callable[[Metrics, Metrics], list[tuple[Metrics, Metrics]]]


class EpochReporter:
    """The `on_epoch_end` callback of every fit: numbers epochs and reports them per result."""

    def __init__(self, sinks: Sequence[ResultSink], splitter: Splitter | None = None) -> None:
        self.sinks = list(sinks)
        self.splitter = splitter or (lambda train, validation: [(train, validation)])
        self.histories = [History() for _ in self.sinks]
        self.next_epoch = 0

    def __call__(self, _fit_epoch: int, train: Metrics, validation: Metrics) -> None:
        parts = self.splitter(train, validation)
        for sink, history, (sub_train, sub_validation) in zip(
            self.sinks, self.histories, parts, strict=True
        ):
            history.record(sub_train, sub_validation)
            sink.epoch(self.next_epoch, sub_train, sub_validation)
        log.info("epoch %d: train %s validation %s", self.next_epoch, train, validation)
        self.next_epoch += 1

    def last_validation(self, metric: str, index: int = 0) -> float | None:
        """The latest value of a validation metric (train when no validation) of one result."""
        history = self.histories[index]
        values = history.validation.get(metric) or history.train.get(metric)
        return values[-1] if values else None
