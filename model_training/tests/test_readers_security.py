"""Both training data readers over a SASL_SSL (SCRAM-SHA-512) broker: tensorflow-io's librdkafka
gets the same security settings (`config_global`) as the project's own consumers."""

from __future__ import annotations

import uuid

import pytest

from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin
from kafkaml.protocol import InputFormat
from model_training.readers import make_reader
from model_training.tests.jobs import RAW_CONFIG, blobs, produce_samples


@pytest.mark.parametrize("reader", ["native", "tfio"])
def test_reader_reads_an_announced_range_over_sasl_ssl(
    secure_kafka: KafkaSettings, reader: str
) -> None:
    topic = f"secure-{uuid.uuid4().hex[:12]}"
    ensure_topics(make_admin(secure_kafka), [topic])
    x, y = blobs(50)
    ranges = produce_samples(secure_kafka, topic, x, y)
    read = make_reader(reader, "tensorflow", secure_kafka, stall_timeout_s=30.0)

    batches = list(read(ranges, InputFormat.RAW, RAW_CONFIG, True))

    assert sum(len(batch[0]) for batch in batches) == 50
    assert (batches[0][0][0] == x[0]).all()
