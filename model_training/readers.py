"""Readers of announced topic ranges: each turns ranges into decoded `(X, y)` batches.

`native` (the default, both frameworks): the project's Kafka consumer, assigned range by range,
batched `consume`, vectorized `decode_batch` (kafkaml.protocol.read_ranges), run in a child
process so that reading does not hold the training loop's GIL (model_training.reader_process).
`tfio` (TensorFlow deployments that ask for it): tensorflow-io's range-subscribing
`KafkaDataset` (the reader Kafka-ML used) fetches the records, then the same `decode_batch`
decodes them, so both readers produce identical samples.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kafkaml.frameworks.base import Array
from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import DecodeError, InputFormat, TopicRange, decode_batch
from kafkaml.protocol.reader import Batch as ReadBatch
from model_training.reader_process import ChildReader

RangeReader = Callable[
    [Sequence[TopicRange], InputFormat, Mapping[str, Any], bool], Iterator[ReadBatch]
]
READ_BATCH = 10_000

log = logging.getLogger(__name__)


class ReaderError(ValueError):
    """A reader that does not exist, or cannot serve this framework."""


def make_reader(
    name: str,
    framework: str,
    settings: KafkaSettings,
    stall_timeout_s: float,
    *,
    start_ahead: bool = True,
) -> RangeReader:
    """The reader called `name` ("native" or "tfio"). Raises ReaderError.

    tfio needs TensorFlow, so a PyTorch job cannot use it. `start_ahead=False` keeps the
    native reader from starting its process before a read (for jobs that read no ranges).
    """
    log.info("training data reader %s", name)
    if name == "native":
        return ChildReader(settings, READ_BATCH, stall_timeout_s, start_ahead=start_ahead)
    if name == "tfio":
        if framework != "tensorflow":
            raise ReaderError("the tfio reader serves TensorFlow deployments only")
        return _tfio(settings, stall_timeout_s)
    raise ReaderError(f"unknown reader {name!r}; expected 'native' or 'tfio'")


def _tfio(settings: KafkaSettings, stall_timeout_s: float) -> RangeReader:
    def read(
        ranges: Sequence[TopicRange],
        input_format: InputFormat,
        input_config: Mapping[str, Any],
        labeled: bool,
    ) -> Iterator[ReadBatch]:
        for topic_range in ranges:
            if topic_range.size:
                yield from _tfio_range(
                    settings, topic_range, input_format, input_config, labeled, stall_timeout_s
                )

    return read


def _tfio_range(
    settings: KafkaSettings,
    topic_range: TopicRange,
    input_format: InputFormat,
    input_config: Mapping[str, Any],
    labeled: bool,
    stall_timeout_s: float,
) -> Iterator[ReadBatch]:
    dataset = _tfio_dataset(settings, topic_range, stall_timeout_s)
    for values, keys, offsets in dataset.batch(READ_BATCH).as_numpy_iterator():
        try:
            yield decode_batch(input_format, input_config, list(values), _keys(keys, labeled))
        except DecodeError as error:
            if error.index is None:
                raise
            offset = int(offsets[error.index].decode().rsplit(":", 1)[1])
            raise error.at(topic_range.topic, topic_range.partition, offset) from None


def _keys(keys: Array, labeled: bool) -> list[bytes] | None:
    return list(keys) if labeled else None


def _tfio_dataset(settings: KafkaSettings, topic_range: TopicRange, stall_timeout_s: float) -> Any:
    """tensorflow-io's KafkaDataset over one range.

    Its subscription `topic:partition:start:last` reads `last` inclusive (measured: a range
    ending at 5000 returns offset 5000), so the exclusive end of our ranges becomes end - 1.
    It is deprecated in favour of `from_kafka`, which reads ~2 k records/s here.
    """
    import tensorflow_io.kafka as tfio_kafka

    subscription = (
        f"{topic_range.topic}:{topic_range.partition}:{topic_range.start}:{topic_range.end - 1}"
    )
    connection = settings.client_config()
    servers = connection.pop("bootstrap.servers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "use from_kafka instead"
        return tfio_kafka.KafkaDataset(
            [subscription],
            servers=servers,
            group=f"kafkaml-tfio-{topic_range.topic}",
            eof=True,
            timeout=int(stall_timeout_s * 1000),
            # The ranges say where to read; committing them to a group would only leave debris.
            config_global=[
                *(f"{key}={value}" for key, value in connection.items()),
                "enable.auto.commit=false",
            ],
            message_key=True,
            message_offset=True,
        )
