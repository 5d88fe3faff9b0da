"""Crash drill: replicas as real processes, one SIGKILLed three times mid-stream and restarted.

`make test` runs it with 20,000 inputs; the full drill is `KAFKAML_DRILL_RECORDS=200000
KAFKAML_DRILL_SECONDS=40 pytest model_inference/tests/test_crash_drill.py`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from kafkaml.kafka import KafkaSettings, make_producer
from model_inference.tests.conftest import (
    Stream,
    TinyModel,
    samples,
)
from model_inference.tests.reader import OutputReader
from model_inference.tests.replicas import Replica

RECORDS = int(os.environ.get("KAFKAML_DRILL_RECORDS", "20000"))
PRODUCE_SECONDS = float(os.environ.get("KAFKAML_DRILL_SECONDS", "10"))
KILLS = 3


def test_replica_killed_three_times_mid_stream_loses_and_duplicates_nothing(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    source, target, spec = new_stream(torch_model, partitions=4)
    replicas = [Replica(spec.path, kafka_settings, str(n), tmp_path,
                        KAFKAML_INFERENCE_MAX_BATCH="500") for n in (0, 1)]  # fmt: skip
    x = samples(RECORDS)
    producer = threading.Thread(target=_produce_paced, args=(kafka_settings, source, x))
    try:
        with OutputReader(kafka_settings, target) as reader:
            for replica in replicas:
                replica.start()
            producer.start()
            for kill in range(1, KILLS + 1):
                reader.wait_for(RECORDS * kill // (KILLS + 1), 300, _alive(replicas))
                replicas[1].kill()
                replicas[1].start()
            producer.join()
            reader.wait_for(RECORDS, 300, _alive(replicas))
            exit_codes = [replica.terminate() for replica in replicas]
            # With every replica gone, any surplus (duplicate) answer sits below the end markers.
            answers = reader.read_to_end()
    finally:
        for replica in replicas:
            replica.stop()

    keys = Counter(answer.key() for answer in answers)
    assert replicas[1].starts == KILLS + 1
    assert len(answers) == RECORDS, f"{len(answers) - RECORDS} answers too many"
    assert keys == Counter(str(i).encode() for i in range(RECORDS))
    expected = torch_model.predictor().predict_batch(x)
    got = np.array(
        [json.loads(cast(bytes, answer.value()))["values"] for answer in answers], dtype=np.float32
    )
    rows = np.array([int(cast(bytes, answer.key())) for answer in answers])
    np.testing.assert_allclose(got, expected[rows], rtol=1e-5, atol=1e-7)
    assert exit_codes == [0, 0], [replica.tail() for replica in replicas]


def _produce_paced(kafka_settings: KafkaSettings, topic: str, x: np.ndarray[Any, Any]) -> None:
    """All rows within PRODUCE_SECONDS, so the kills land while records keep arriving."""
    producer = make_producer(kafka_settings, linger_ms=5)
    started = time.monotonic()
    for number, row in enumerate(x):
        producer.produce(topic, row.tobytes(), str(number).encode())
        if number % 500 == 0:
            producer.poll(0)
            ahead = started + PRODUCE_SECONDS * number / len(x) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a condition
    assert producer.flush(60) == 0


def _alive(replicas: list[Replica]) -> Callable[[], None]:
    def check() -> None:
        for replica in replicas:
            assert replica.running(), f"replica {replica.name} died:\n{replica.tail()}"

    return check
