"""Windows of an online topic on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer

from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import InputFormat
from model_training.online import assign_from, windows
from model_training.tests.jobs import RAW_CONFIG, blobs, produce_samples


def test_time_spent_training_on_a_window_does_not_end_the_stream(
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    consumer_factory: Callable[..., Consumer],
) -> None:
    topic = new_topic()
    since_ms = int(time.time() * 1000) - 60_000
    produce_samples(kafka_settings, topic, *blobs(1000))
    consumer = consumer_factory()
    assign_from(consumer, topic, since_ms)
    sizes = []
    for window in windows(consumer, InputFormat.RAW, RAW_CONFIG, 250, stream_timeout_s=1.0):
        sizes.append(len(window))
        time.sleep(1.5)  # a training step longer than the stream timeout, on data already there

    assert sum(sizes) == 1000, sizes
