"""The native reader's child process: the same batches as reading in-process, errors with their
facts, and no process left behind."""

from __future__ import annotations

import os
import pickle
import subprocess
from collections.abc import Callable, Generator

import numpy as np
import pytest

from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import DecodeError, InputFormat, RangeReadError, TopicRange, read_ranges
from kafkaml.protocol.reader import Batch as ReadBatch
from model_training.reader_process import ChildReader, ReaderProcessError
from model_training.tests.jobs import RAW_CONFIG, blobs, produce_samples


def _reader(settings: KafkaSettings) -> ChildReader:
    return ChildReader(settings, batch_size=700, stall_timeout_s=10)


def test_the_child_yields_the_batches_read_ranges_yields_in_order(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=3)
    ranges = produce_samples(kafka_settings, topic, *blobs(3000), partitions=3)
    expected = list(read_ranges(kafka_settings, ranges, InputFormat.RAW, RAW_CONFIG, 700))
    got = list(_reader(kafka_settings)(ranges, InputFormat.RAW, RAW_CONFIG, True))
    assert [len(x) for x, _ in got] == [len(x) for x, _ in expected]
    for (x, y), (x_expected, y_expected) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x, x_expected)
        assert y is not None and y_expected is not None
        np.testing.assert_array_equal(y, y_expected)


def test_a_reader_serves_several_reads_each_in_its_own_child(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    x, y = blobs(500)
    ranges = produce_samples(kafka_settings, topic, x, y)
    read = _reader(kafka_settings)
    for labeled in (True, False):
        batches = list(read(ranges, InputFormat.RAW, RAW_CONFIG, labeled))
        np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
        assert all((b[1] is None) != labeled for b in batches)


def test_a_bad_record_raises_the_decode_error_with_its_location_from_the_child(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    ranges = produce_samples(kafka_settings, topic, *blobs(10))
    producer = make_producer(kafka_settings)
    producer.produce(topic, b"\x01\x02\x03", b"\x01", partition=0)
    assert producer.flush(30) == 0
    bad = [TopicRange(topic, 0, 0, ranges[0].end + 1)]
    with pytest.raises(DecodeError) as raised:
        list(_reader(kafka_settings)(bad, InputFormat.RAW, RAW_CONFIG, True))
    assert (raised.value.topic, raised.value.partition, raised.value.offset) == (topic, 0, 10)


def test_a_range_the_broker_does_not_hold_raises_range_read_error_from_the_child(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    produce_samples(kafka_settings, topic, *blobs(10))
    with pytest.raises(RangeReadError) as raised:
        list(_reader(kafka_settings)([TopicRange(topic, 0, 0, 50)], InputFormat.RAW,
                                     RAW_CONFIG, True))  # fmt: skip
    assert (raised.value.topic, raised.value.partition) == (topic, 0)
    assert "up to 10" in str(raised.value)


def test_range_read_errors_survive_pickling_however_they_were_made() -> None:
    for error in (
        RangeReadError("gone", "t", 2),
        RangeReadError(message="x", topic="t", partition=1),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.message, copy.topic, copy.partition) == (
            error.message, error.topic, error.partition)  # fmt: skip


def _reading(
    settings: KafkaSettings, new_topic: Callable[..., str]
) -> tuple[subprocess.Popen[bytes], Generator[ReadBatch, None, None]]:
    """A read of 3000 samples that has yielded its first batch, and the child reading them."""
    ranges = produce_samples(settings, new_topic(), *blobs(3000))
    read = _reader(settings)
    child = read._ready
    assert child is not None
    batches = read(ranges, InputFormat.RAW, RAW_CONFIG, True)
    assert isinstance(batches, Generator)
    next(batches)
    return child.process, batches


def test_closing_the_batches_early_ends_the_child(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    process, batches = _reading(kafka_settings, new_topic)
    batches.close()
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_a_child_that_dies_mid_stream_is_a_named_error(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    process, batches = _reading(kafka_settings, new_topic)
    process.kill()
    with pytest.raises(ReaderProcessError, match="exited with code -9"):
        list(batches)


def test_a_reader_made_without_starting_ahead_starts_its_child_at_the_first_read(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    x, y = blobs(100)
    ranges = produce_samples(kafka_settings, new_topic(), x, y)
    read = ChildReader(kafka_settings, batch_size=700, stall_timeout_s=10, start_ahead=False)
    assert read._ready is None
    batches = list(read(ranges, InputFormat.RAW, RAW_CONFIG, True))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
