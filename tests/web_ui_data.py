"""Data for the web UI's browser test, sent the way its pages tell a user to send it.

python tests/web_ui_data.py train BOOTSTRAP DEPLOYMENT_ID CONTROL_TOPIC
    labeled samples through the RawSink call the Deploy page shows (4 features, 3 classes)
python tests/web_ui_data.py predict BOOTSTRAP TOPIC SECONDS
    unlabeled samples to an inference's input topic, a few hundred a second, for SECONDS
"""

from __future__ import annotations

import sys
import time

import numpy as np

from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings, make_producer

CLASSES, FEATURES = 3, 4


def blobs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: float32 samples, int64 labels."""
    centers = np.random.default_rng(42).normal(0, 3, size=(CLASSES, FEATURES))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=count)
    x = (centers[y] + rng.normal(0, 1, size=(count, FEATURES))).astype(np.float32)
    return x, y.astype(np.int64)


def train(bootstrap: str, deployment_id: int, control_topic: str) -> None:
    x, y = blobs(3000)
    with RawSink(
        bootstrap, f"kafkaml-data-{deployment_id}", deployment_id=deployment_id,
        data_type="float32", label_type="int64", data_reshape="4", label_reshape="1",
        validation_rate=0.1, test_rate=0.1, control_topic=control_topic, progress=False,
    ) as sink:  # fmt: skip
        sink.send_many(x, y)


def predict(bootstrap: str, topic: str, seconds: float) -> None:
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap))
    x, _ = blobs(100_000, seed=1)
    deadline, index = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for sample in x[index : index + 50]:
            producer.produce(topic, sample.tobytes())
        index = (index + 50) % len(x)
        producer.poll(0)
        time.sleep(0.1)
    producer.flush(30)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "train":
        train(args[0], int(args[1]), args[2])
    else:
        predict(args[0], args[1], float(args[2]))
