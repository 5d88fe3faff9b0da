"""The training modes, composed over the `Framework` hooks (build, fit, evaluate, chain).

Every mode gets a `Job` (what to train, where to report, how to read) and the job's control
message, trains, and ends by reporting each result finished, or raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer

from kafkaml.frameworks import Framework, Metrics
from kafkaml.frameworks.base import Array
from kafkaml.protocol import ControlMessage
from model_training.control import Announcement
from model_training.dataset import (
    TRAIN,
    VALIDATION,
    Samples,
    Split,
    StreamedSplit,
    array_batches,
    collect,
    split,
)
from model_training.evaluation import (
    classes_of,
    confidences_of,
    confusion_matrix,
    predict_all,
)
from model_training.online import assign_from, windows
from model_training.progress import EpochReporter
from model_training.readers import RangeReader
from model_training.reporting import ResultSink
from model_training.spec import JobSpec, ModelCode

log = logging.getLogger(__name__)


class ModeError(ValueError):
    """The control message does not fit the deployment's mode (e.g. no unlabeled topic)."""


@dataclass
class Job:
    """What one job trains and the clients it does it with."""

    spec: JobSpec
    framework: Framework
    sinks: list[ResultSink]
    reader: RangeReader
    seed: int
    memory_limit_bytes: int = 2 * 2**30
    spill_dir: Path | None = None
    online_consumer: Consumer | None = None
    started: float = field(default_factory=time.monotonic)


def train(job: Job, announcement: Announcement) -> None:
    """Train in the spec's mode on the announced stream; every result ends finished or raises."""
    message = announcement.message
    mode = job.spec.mode
    if mode == "incremental" or (message.incremental and not message.ranges):
        train_incremental(job, announcement)
    elif mode == "distributed":
        train_chain(job, message)
    elif mode == "semi-supervised":
        train_semi_supervised(job, message)
    else:
        train_classic(job, message)


def read_unlabeled(job: Job, message: ControlMessage) -> Samples:
    """The samples of the unsupervised ranges, read once and held (no labels)."""
    ranges = message.unsupervised_ranges
    batches = job.reader(ranges, message.input_format, message.input_config, False)
    expected = sum(topic_range.size for topic_range in ranges)
    samples = collect(
        batches, expected, memory_limit_bytes=job.memory_limit_bytes, spill_dir=job.spill_dir
    )
    log.info("read %d unlabeled samples from %d range(s)", len(samples), len(ranges))
    return samples


def _framework_labels(job: Job, samples: Samples) -> Samples:
    return Samples(*_framework_batch(job, samples.x, samples.y))


def _labeled(job: Job) -> bool:
    """Whether the job reads labels from the records' keys (not for target "input")."""
    return job.spec.target != "input"


def _framework_batch(job: Job, x: Array, y: Array | None) -> tuple[Array, Array | None]:
    """The targets the framework fits to: the input itself for target "input"; else the labels,
    where labels of one value per sample become scalars for PyTorch (as Kafka-ML's PyTorch jobs
    do), whose losses want `(batch,)` class targets; Keras takes either shape."""
    if not _labeled(job):
        return x, x
    if job.framework.name == "pytorch" and y is not None and y.shape[1:] == (1,):
        return x, y.reshape(len(y))
    return x, y


def train_classic(job: Job, message: ControlMessage) -> None:
    """Split by the message's rates, fit, evaluate the test part, upload the model."""
    stream = _stream(job, message)
    model = _build(job, job.spec.models[0])
    reporter = EpochReporter(job.sinks)
    _fit_stream(job, model, stream, reporter)
    _finish_single(job, model, stream.split(), reporter)


def train_semi_supervised(job: Job, message: ControlMessage) -> None:
    """Fit on the labeled data, then `rounds` refits adding confident pseudo-labels."""
    if not message.unsupervised_ranges:
        raise ModeError("semi-supervised training needs an unsupervised_topic with ranges")
    stream = _stream(job, message)
    model = _build(job, job.spec.models[0])
    reporter = EpochReporter(job.sinks)
    _fit_stream(job, model, stream, reporter)
    parts = stream.split()
    unlabeled = read_unlabeled(job, message).x
    train_x, train_y = parts.train.arrays()
    assert train_y is not None
    options = job.spec.semi_supervised
    for round_index in range(options.rounds):
        scores = predict_all(model, unlabeled)[-1]
        chosen = confidences_of(scores) >= options.confidence
        pseudo = classes_of(scores[chosen]).astype(train_y.dtype).reshape(-1, *train_y.shape[1:])
        log.info("round %d: %d pseudo-labels", round_index + 1, int(chosen.sum()))
        x = np.concatenate([train_x, unlabeled[chosen]])
        y = np.concatenate([train_y, pseudo])
        _fit(job, model, parts, reporter, train_batches=array_batches(x, y, job.spec.batch_size))
    _finish_single(job, model, parts, reporter)


def train_chain(job: Job, message: ControlMessage) -> None:
    """Train an early-exit chain as one model, every exit on the label; report per sub-model."""
    stream = _stream(job, message)
    subs = [_build(job, code, chained=True) for code in job.spec.models]
    options = job.spec.distributed
    rate = {"learning_rate": options.learning_rate}
    optimizer = {"class_name": options.optimizer, "config": rate}
    chain = job.framework.chain(
        subs, optimizer=optimizer, loss=options.loss, metrics=list(options.metrics)
    )
    tiers = len(subs)
    split_metrics = job.framework.split_metrics

    def per_exit(train: Metrics, validation: Metrics) -> list[tuple[Metrics, Metrics]]:
        return list(zip(split_metrics(train, tiers), split_metrics(validation, tiers), strict=True))

    reporter = EpochReporter(job.sinks, per_exit)
    _fit_stream(job, chain, stream, reporter)
    parts = stream.split()
    test = _test_metrics(job, chain, parts)
    tests = split_metrics(test, tiers) if test else [{} for _ in subs]
    matrices = _confusion(job, chain, parts) or [None] * tiers
    for index, (sub, sink) in enumerate(zip(subs, job.sinks, strict=True)):
        metrics = _final_metrics(job, reporter, tests[index], matrices[index], parts.seed, index)
        sink.finish(sub.save(), job.framework.artifact_format, metrics)


def train_incremental(job: Job, announcement: Announcement) -> None:
    """Train on windows of the online topic as they arrive, until `stream_timeout` passes.

    Indefinite training never ends by itself; it publishes a snapshot whenever the monitored
    validation metric improves by `improvement` in the direction `change`.
    """
    message = announcement.message
    if job.online_consumer is None:
        raise ModeError("incremental training needs a consumer for the online topic")
    options = job.spec.incremental
    assign_from(job.online_consumer, message.topic, announcement.timestamp_ms)
    timeout = None if options.stream_timeout_ms is None else options.stream_timeout_ms / 1000
    model = _build(job, job.spec.models[0])
    reporter = EpochReporter(job.sinks)
    best: float | None = None
    stream = windows(
        job.online_consumer,
        message.input_format,
        message.input_config,
        options.window,
        timeout,
        labeled=_labeled(job),
    )
    for index, window in enumerate(stream):
        samples = _framework_labels(job, window)
        parts = split(samples, message.validation_rate, 0.0, job.seed + index)
        _fit(job, model, parts, reporter)
        log.info("trained on a window of %d samples", len(window))
        if options.indefinite:
            best = _snapshot_if_better(job, model, reporter, best, job.seed)
    if reporter.next_epoch == 0:
        raise ModeError(f"no sample arrived on the online topic {message.topic!r}")
    metrics = _final_metrics(job, reporter, {}, None, job.seed, 0)
    job.sinks[0].finish(model.save(), job.framework.artifact_format, metrics)


def _snapshot_if_better(
    job: Job, model: Any, reporter: EpochReporter, best: float | None, seed: int
) -> float | None:
    options = job.spec.incremental
    value = reporter.last_validation(options.monitoring_metric)
    if value is None:
        raise ModeError(f"the model reports no metric {options.monitoring_metric!r}")
    if best is None:
        return value
    gain = value - best if options.change == "up" else best - value
    if gain < options.improvement:
        return best
    log.info("%s improved to %s: publishing a snapshot", options.monitoring_metric, value)
    metrics = _final_metrics(job, reporter, {}, None, seed, 0)
    job.sinks[0].snapshot(model.save(), job.framework.artifact_format, metrics)
    return value


def _stream(job: Job, message: ControlMessage) -> StreamedSplit:
    """The labeled ranges as a split that fills while the first epoch trains on it."""
    if not message.ranges:
        raise ModeError(f"the control message announces no ranges (topic {message.topic!r})")
    read = job.reader(message.ranges, message.input_format, message.input_config, _labeled(job))
    batches = (_framework_batch(job, x, y) for x, y in read)
    return StreamedSplit(
        batches,
        sum(topic_range.size for topic_range in message.ranges),
        message.validation_rate,
        message.test_rate,
        job.seed,
        memory_limit_bytes=job.memory_limit_bytes,
        spill_dir=job.spill_dir,
    )


def _build(job: Job, code: ModelCode, *, chained: bool = False) -> Any:
    if chained and job.framework.name == "tensorflow":
        # Keras sub-models are compiled as a whole by `chain`, so they need not be on their own;
        # PyTorch tiers bring the loss_fn/optimizer/metrics that the chain combines.
        # (TensorFlowFramework.build's own option, beyond the Framework protocol.)
        sub_model: dict[str, Any] = {"require_compiled": False}
        return job.framework.build(code.imports, code.code, **sub_model)
    return job.framework.build(code.imports, code.code)


def _fit(
    job: Job, model: Any, parts: Split, reporter: EpochReporter, *, train_batches: Any = None
) -> None:
    batch_size = job.spec.batch_size
    job.framework.fit(
        model,
        train_batches or parts.train.batches(batch_size),
        fit_kwargs=job.spec.fit_kwargs,
        validation=parts.validation.batches(batch_size) if parts.validation else None,
        on_epoch_end=reporter,
    )


def _fit_stream(job: Job, model: Any, stream: StreamedSplit, reporter: EpochReporter) -> None:
    """Fit while the stream fills; a read error that ended the stream is raised, not the
    framework's complaint about the data running out."""
    batch_size = job.spec.batch_size
    validation = stream.batches(VALIDATION, batch_size) if stream.has_role(VALIDATION) else None
    try:
        job.framework.fit(
            model,
            stream.batches(TRAIN, batch_size),
            fit_kwargs=job.spec.fit_kwargs,
            validation=validation,
            on_epoch_end=reporter,
        )
    finally:
        stream.raise_error()


def _test_metrics(job: Job, model: Any, parts: Split) -> Metrics:
    if parts.test is None:
        return {}
    batches = parts.test.batches(job.spec.batch_size)
    return job.framework.evaluate(model, batches, eval_kwargs=job.spec.eval_kwargs)


def _confusion(job: Job, model: Any, parts: Split) -> list[list[list[int]] | None] | None:
    """One confusion matrix per output on the test part, when asked for and there is one."""
    if not job.spec.confusion_matrix or parts.test is None:
        return None
    x, y = parts.test.arrays()
    assert y is not None
    return [confusion_matrix(y, scores) for scores in predict_all(model, x)]


def _finish_single(job: Job, model: Any, parts: Split, reporter: EpochReporter) -> None:
    test = _test_metrics(job, model, parts)
    matrices = _confusion(job, model, parts)
    matrix = matrices[-1] if matrices else None
    metrics = _final_metrics(job, reporter, test, matrix, parts.seed, 0)
    job.sinks[0].finish(model.save(), job.framework.artifact_format, metrics)


def _final_metrics(
    job: Job,
    reporter: EpochReporter,
    test: Metrics,
    matrix: list[list[int]] | None,
    seed: int,
    index: int,
) -> dict[str, Any]:
    history = reporter.histories[index]
    return {
        "train": history.train,
        "validation": history.validation,
        "test": dict(test),
        "confusion_matrix": matrix,
        "training_time_s": round(time.monotonic() - job.started, 3),
        "seed": seed,
    }
