"""The training data of one job: read from Kafka once, held in memory (or spilled to a file when
it does not fit), then split into train / validation / test with a recorded seed.

Epochs iterate the held arrays, so the stream is read once per job, not once per epoch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kafkaml.frameworks import BatchSource

log = logging.getLogger(__name__)

ReadBatch = tuple[np.ndarray, np.ndarray | None]


class EmptyStreamError(ValueError):
    """The announced ranges held no samples, or a split left a part the job needs empty."""


@dataclass(frozen=True)
class Samples:
    """Samples X (leading batch dimension) and their labels y (None for unlabeled data)."""

    x: np.ndarray
    y: np.ndarray | None

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
    x_out: np.ndarray | None = None
    y_out: np.ndarray | None = None
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


def _allocate(
    first: np.ndarray, rows: int, memory_limit_bytes: int, spill_dir: Path | None
) -> np.ndarray:
    shape = (rows, *first.shape[1:])
    size = int(np.prod(shape, dtype=np.int64)) * first.dtype.itemsize
    if size <= memory_limit_bytes:
        return np.empty(shape, dtype=first.dtype)
    handle, path = tempfile.mkstemp(prefix="kafkaml-spill-", suffix=".npy", dir=spill_dir)
    os.close(handle)
    log.info("spilling %d MB of training data to %s", size // 2**20, path)
    try:
        return np.lib.format.open_memmap(path, mode="w+", dtype=first.dtype, shape=shape)
    finally:
        os.unlink(path)  # the mapping stays valid; the file vanishes with the process


@dataclass(frozen=True)
class Part:
    """Some rows of a Samples, in a fixed (shuffled) order."""

    samples: Samples
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The part's rows as arrays (a copy, in the part's order)."""
        y = self.samples.y
        return self.samples.x[self.indices], None if y is None else y[self.indices]

    def batches(self, batch_size: int) -> BatchSource:
        """A batch source that yields the part's rows, `batch_size` at a time, every call."""
        samples, indices = self.samples, self.indices
        if samples.y is None:
            raise EmptyStreamError("unlabeled samples cannot train or evaluate a model")
        labels = samples.y

        def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
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


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> BatchSource:
    """A batch source over two arrays in their order (contiguous slices, no copies)."""

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

    return source
