"""The held training data: spill, the seeded split, and the split that fills while it trains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kafkaml.frameworks.base import Array
from kafkaml.protocol import DecodeError
from model_training.dataset import (
    TEST,
    TRAIN,
    VALIDATION,
    EmptyStreamError,
    Samples,
    StreamedSplit,
    collect,
    split,
)


def _batches(count: int, size: int = 70) -> Iterator[tuple[Array, Array]]:
    for start in range(0, count, size):
        rows = np.arange(start, min(start + size, count))
        yield rows.astype(np.float32).reshape(-1, 1) * np.ones((1, 3), np.float32), rows


def _rows(source: object) -> list[int]:
    return [int(v) for _, y in source() for v in y]  # type: ignore[operator]


def test_collect_spills_to_a_file_when_the_data_exceeds_the_memory_limit(tmp_path: Path) -> None:
    samples = collect(_batches(500), 500, memory_limit_bytes=100, spill_dir=tmp_path)
    assert isinstance(samples.x, np.memmap)
    assert samples.y is not None and samples.y.tolist() == list(range(500))
    assert list(tmp_path.iterdir()) == []  # unlinked at once, nothing left behind


def test_collect_shrinks_to_the_samples_that_arrived() -> None:
    samples = collect(_batches(90), 100, memory_limit_bytes=2**20)
    assert len(samples) == 90


def test_collect_of_an_empty_stream_is_a_named_error() -> None:
    with pytest.raises(EmptyStreamError):
        collect(iter([]), 10, memory_limit_bytes=2**20)


def test_split_is_a_deterministic_partition_by_the_rates() -> None:
    samples = collect(_batches(1000), 1000, memory_limit_bytes=2**20)
    first, again = split(samples, 0.1, 0.2, seed=3), split(samples, 0.1, 0.2, seed=3)
    assert first.test is not None and first.validation is not None
    assert (len(first.train), len(first.validation), len(first.test)) == (700, 100, 200)
    assert np.array_equal(first.train.indices, again.train.indices)
    every = np.concatenate([first.train.indices, first.validation.indices, first.test.indices])
    assert sorted(every.tolist()) == list(range(1000))
    assert not np.array_equal(first.train.indices, split(samples, 0.1, 0.2, 4).train.indices)


def test_streamed_split_cuts_the_same_parts_as_split_with_the_same_seed() -> None:
    stream = StreamedSplit(_batches(1000), 1000, 0.1, 0.2, 5, memory_limit_bytes=2**20)
    held = collect(_batches(1000), 1000, memory_limit_bytes=2**20)
    streamed, reference = stream.split(), split(held, 0.1, 0.2, 5)
    assert np.array_equal(streamed.train.indices, reference.train.indices)
    assert streamed.test is not None and reference.test is not None
    assert np.array_equal(streamed.test.indices, reference.test.indices)


def test_a_first_pass_while_reading_yields_each_training_row_once() -> None:
    stream = StreamedSplit(_batches(1000), 1000, 0.1, 0.2, 5, memory_limit_bytes=2**20)
    first_pass = _rows(stream.batches(TRAIN, 64))
    later_pass = _rows(stream.batches(TRAIN, 64))
    assert sorted(first_pass) == sorted(later_pass)
    assert len(first_pass) == 700 and len(set(first_pass)) == 700
    assert sorted(_rows(stream.batches(VALIDATION, 64))) == sorted(
        stream.split().validation.indices.tolist()  # type: ignore[union-attr]
    )
    assert len(_rows(stream.batches(TEST, 64))) == 200


def test_a_read_error_ends_the_stream_and_is_raised_by_split() -> None:
    def failing() -> Iterator[tuple[Array, Array]]:
        yield from _batches(100)
        raise DecodeError("bad record", topic="t", partition=0, offset=100)

    stream = StreamedSplit(failing(), 200, 0.0, 0.0, 1, memory_limit_bytes=2**20)
    rows = _rows(stream.batches(TRAIN, 64))
    assert len(rows) <= 100
    with pytest.raises(DecodeError, match="offset 100"):
        stream.split()


def test_a_split_that_leaves_nothing_to_train_on_is_a_named_error() -> None:
    samples = Samples(np.zeros((5, 1)), np.zeros(5))
    with pytest.raises(EmptyStreamError):
        split(samples, 0.6, 0.4, seed=1)


@pytest.mark.parametrize(
    ("expected", "says"),
    [(0, "announces a data stream of no records"), (10, "of 10 records ended without a single")],
)
@pytest.mark.parametrize("after_the_end", [True, False])
def test_a_stream_that_ends_without_a_sample_fails_every_pass_with_a_sentence(
    expected: int, says: str, after_the_end: bool
) -> None:
    stream = StreamedSplit(iter([]), expected, 0.0, 0.0, 1, memory_limit_bytes=2**20)
    if after_the_end:
        with pytest.raises(EmptyStreamError, match=says):
            stream.split()
    with pytest.raises(EmptyStreamError, match=says):
        _rows(stream.batches(TRAIN, 64))
