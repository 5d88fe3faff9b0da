"""The training data of one job: read from Kafka once, held in memory (or spilled to a file when
it does not fit), and split into train / validation / test with a recorded seed.

The first training pass runs while the stream is read (`StreamedSplit`): each batch read is
held and its training rows are trained on at once, so reading overlaps the first epoch. Later
passes iterate the held arrays, so the stream is read once per job, not once per epoch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kafkaml.frameworks import BatchSource
from kafkaml.frameworks.base import Array
from kafkaml.protocol.reader import Batch as ReadBatch

log = logging.getLogger(__name__)


class EmptyStreamError(ValueError):
    """The announced ranges held no samples, or a split left a part the job needs empty."""


@dataclass(frozen=True)
class Samples:
    """Samples X (leading batch dimension) and their labels y (None for unlabeled data)."""

    x: Array
    y: Array | None

    def __len__(self) -> int:
        return len(self.x)


def collect(
    batches: Iterable[ReadBatch],
    expected: int,
    *,
    memory_limit_bytes: int,
    spill_dir: Path | None = None,
) -> Samples:
    """All samples of `batches` in two arrays of at most `expected` rows.

    When `expected` samples need more than `memory_limit_bytes`, the arrays are memory-mapped
    files in `spill_dir` (unlinked at once, so nothing is left behind). Fewer samples than
    `expected` (offset gaps) shrink the result. Raises EmptyStreamError when there are none.
    """
    x_out: Array | None = None
    y_out: Array | None = None
    count = 0
    for x, y in batches:
        if x_out is None:
            x_out = _allocate(x, expected, memory_limit_bytes, spill_dir)
            y_out = None if y is None else _allocate(y, expected, memory_limit_bytes, spill_dir)
        end = min(count + len(x), expected)
        x_out[count:end] = x[: end - count]
        if y_out is not None and y is not None:
            y_out[count:end] = y[: end - count]
        count = end
    if x_out is None or count == 0:
        raise EmptyStreamError("the announced data stream holds no samples")
    return Samples(x_out[:count], None if y_out is None else y_out[:count])


def _allocate(first: Array, rows: int, memory_limit_bytes: int, spill_dir: Path | None) -> Array:
    shape = (rows, *first.shape[1:])
    size = int(np.prod(shape, dtype=np.int64)) * first.dtype.itemsize
    if size <= memory_limit_bytes:
        return np.empty(shape, dtype=first.dtype)
    handle, path = tempfile.mkstemp(prefix="kafkaml-spill-", suffix=".npy", dir=spill_dir)
    os.close(handle)
    log.info("spilling %d MB of training data to %s", size // 2**20, path)
    try:
        mapped: Array = np.lib.format.open_memmap(  # type: ignore[no-untyped-call]
            path, mode="w+", dtype=first.dtype, shape=shape
        )
        return mapped
    finally:
        os.unlink(path)  # the mapping stays valid; the file vanishes with the process


@dataclass(frozen=True)
class Part:
    """Some rows of a Samples, in a fixed (shuffled) order."""

    samples: Samples
    indices: Array

    def __len__(self) -> int:
        return len(self.indices)

    def arrays(self) -> tuple[Array, Array | None]:
        """The part's rows as arrays (a copy, in the part's order)."""
        y = self.samples.y
        return self.samples.x[self.indices], None if y is None else y[self.indices]

    def batches(self, batch_size: int) -> BatchSource:
        """A batch source that yields the part's rows, `batch_size` at a time, every call."""
        samples, indices = self.samples, self.indices
        if samples.y is None:
            raise EmptyStreamError("unlabeled samples cannot train or evaluate a model")
        labels = samples.y

        def source() -> Iterator[tuple[Array, Array]]:
            for start in range(0, len(indices), batch_size):
                chosen = indices[start : start + batch_size]
                yield samples.x[chosen], labels[chosen]

        return source


@dataclass(frozen=True)
class Split:
    """Train, validation and test parts of one Samples, and the seed that shuffled them."""

    train: Part
    validation: Part | None
    test: Part | None
    seed: int


def split(samples: Samples, validation_rate: float, test_rate: float, seed: int) -> Split:
    """Shuffle with `seed`, then cut test, validation and train parts by the given rates.

    Rates are fractions of all samples, rounded down; an empty validation or test part is None.
    Raises EmptyStreamError when no sample is left to train on.
    """
    order = np.random.default_rng(seed).permutation(len(samples))
    test_size = int(len(samples) * test_rate)
    validation_size = int(len(samples) * validation_rate)
    test = order[:test_size]
    validation = order[test_size : test_size + validation_size]
    train = order[test_size + validation_size :]
    if not len(train):
        raise EmptyStreamError(
            f"{len(samples)} samples with validation_rate {validation_rate} and test_rate "
            f"{test_rate} leave none to train on"
        )
    return Split(
        train=Part(samples, train),
        validation=Part(samples, validation) if len(validation) else None,
        test=Part(samples, test) if len(test) else None,
        seed=seed,
    )


def array_batches(x: Array, y: Array, batch_size: int) -> BatchSource:
    """A batch source over two arrays in their order (contiguous slices, no copies)."""

    def source() -> Iterator[tuple[Array, Array]]:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

    return source


TRAIN, VALIDATION, TEST = 0, 1, 2


class StreamedSplit:
    """A train / validation / test split of a stream that a background thread is reading.

    The thread holds every read batch in arrays sized for `expected` samples (so reading ahead
    costs no memory beyond the data itself) while training consumes what is held. Every
    position of the `expected` samples gets its part up front from the seeded shuffle (the
    same cut as `split`), so a sample can be trained on the moment it is read. A pass that
    starts before the end of the stream yields the rows already held, then rows as they are
    read (the first epoch sees the stream in read order, shuffled within each read batch); a
    pass after the end iterates the held rows in shuffled order. A read error ends the stream:
    it is kept in `error`, and `split()` and `raise_error()` raise it.
    """

    def __init__(
        self,
        batches: Iterable[ReadBatch],
        expected: int,
        validation_rate: float,
        test_rate: float,
        seed: int,
        *,
        memory_limit_bytes: int,
        spill_dir: Path | None = None,
    ) -> None:
        self.seed = seed
        self.expected = expected
        self.error: BaseException | None = None
        self._batches = iter(batches)
        self._memory_limit_bytes = memory_limit_bytes
        self._spill_dir = spill_dir
        self._order = np.random.default_rng(seed).permutation(expected)
        self._roles = _roles(self._order, validation_rate, test_rate)
        self._x: Array | None = None
        self._y: Array | None = None
        self._count = 0
        self._done = False
        self._changed = threading.Condition()
        self._rates = (validation_rate, test_rate)
        self._reader = threading.Thread(target=self._fill, name="kafkaml-reader", daemon=True)
        self._reader.start()

    def batches(self, role: int, batch_size: int) -> BatchSource:
        """A batch source of one part (TRAIN, VALIDATION or TEST) that streams until read."""

        def source() -> Iterator[tuple[Array, Array]]:
            if self._done:
                if self.error is None:
                    self._held_x()
                    yield from self._held_batches(role, batch_size)
                return
            yield from self._streaming(role, batch_size)

        return source

    def split(self) -> Split:
        """The complete split, once the stream is read to its end. Raises the read error."""
        with self._changed:
            while not self._done:
                self._changed.wait(0.5)
        self.raise_error()
        samples = Samples(self._held_x()[: self._count], _cut(self._y, self._count))
        parts = [self._indices(role) for role in (TRAIN, VALIDATION, TEST)]
        if not len(parts[TRAIN]):
            raise EmptyStreamError(
                f"{self._count} samples with validation_rate {self._rates[0]} and test_rate "
                f"{self._rates[1]} leave none to train on"
            )
        return Split(
            train=Part(samples, parts[TRAIN]),
            validation=Part(samples, parts[VALIDATION]) if len(parts[VALIDATION]) else None,
            test=Part(samples, parts[TEST]) if len(parts[TEST]) else None,
            seed=self.seed,
        )

    def raise_error(self) -> None:
        """Raise the error that ended the read, if one did."""
        if self.error is not None:
            raise self.error

    def _held_x(self) -> Array:
        """The held samples; raises EmptyStreamError, saying why, when the stream ended without
        a sample."""
        if self._x is not None and self._count > 0:
            return self._x
        if self.expected == 0:
            raise EmptyStreamError(
                "the control message announces a data stream of no records (its topic ranges "
                "are empty), so there is nothing to train on"
            )
        raise EmptyStreamError(
            f"the announced data stream of {self.expected} records ended without a single "
            "sample, so there is nothing to train on"
        )

    def has_role(self, role: int) -> bool:
        """Whether the part gets any of the expected samples."""
        return bool(np.any(self._roles == role))

    def _indices(self, role: int) -> Array:
        chosen: Array = self._order[self._roles[self._order] == role]
        return chosen[chosen < self._count]

    def _held_batches(self, role: int, batch_size: int) -> Iterator[tuple[Array, Any]]:
        x, y = self._x, self._y
        assert x is not None and y is not None
        indices = self._indices(role)
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size]
            yield x[chosen], y[chosen]

    def _streaming(self, role: int, batch_size: int) -> Iterator[tuple[Array, Any]]:
        waiting = np.empty(0, dtype=np.int64)
        seen = 0
        while True:
            # Read once: the reader thread may hold more rows by the next line, and rows
            # counted as seen without being taken would be missing from this pass.
            held = self._count
            if seen < held:
                rows = np.arange(seen, held)
                rows = rows[self._roles[rows] == role]
                np.random.default_rng(self.seed + seen).shuffle(rows)
                waiting = np.concatenate([waiting, rows])
                seen = held
                while len(waiting) >= batch_size:
                    yield self._rows(waiting[:batch_size])
                    waiting = waiting[batch_size:]
            elif not self._wait_beyond(seen):
                break
        if self.error is None:
            self._held_x()
        if len(waiting) and self.error is None:
            yield self._rows(waiting)

    def _rows(self, indices: Array) -> tuple[Array, Any]:
        assert self._x is not None and self._y is not None
        return self._x[indices], self._y[indices]

    def _fill(self) -> None:
        """The reader thread: hold every batch, then mark the end (or the error that ended it)."""
        try:
            for x, y in self._batches:
                with self._changed:
                    self._hold(x, y)
                    self._changed.notify_all()
        except Exception as error:  # kept and raised by the job, not lost in a framework thread
            self.error = error
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _wait_beyond(self, seen: int) -> bool:
        """Wait until more than `seen` rows are held (True) or the stream ended (False)."""
        with self._changed:
            while self._count == seen and not self._done:
                self._changed.wait(0.5)
            return self._count > seen

    def _hold(self, x: Array, y: Array | None) -> None:
        if y is None:
            raise EmptyStreamError("unlabeled samples cannot train or evaluate a model")
        if self._x is None:
            self._x = _allocate(x, self.expected, self._memory_limit_bytes, self._spill_dir)
            self._y = _allocate(y, self.expected, self._memory_limit_bytes, self._spill_dir)
        assert self._y is not None
        end = min(self._count + len(x), self.expected)
        self._x[self._count : end] = x[: end - self._count]
        self._y[self._count : end] = y[: end - self._count]
        self._count = end


def _roles(order: Array, validation_rate: float, test_rate: float) -> Array:
    """The part of every position: the same cut of the shuffled order as `split` makes."""
    test_size = int(len(order) * test_rate)
    validation_size = int(len(order) * validation_rate)
    roles = np.full(len(order), TRAIN, dtype=np.int8)
    roles[order[:test_size]] = TEST
    roles[order[test_size : test_size + validation_size]] = VALIDATION
    return roles


def _cut(y: Array | None, count: int) -> Array | None:
    return None if y is None else y[:count]
