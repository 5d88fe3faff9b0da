"""Kafka-ML's users' clients, with Kafka-ML's client libraries, against kafkaml on the real
broker: kafka-python 2.0.2 (no codec extras) reads our control messages, sink data and
at-least-once outputs; confluent-kafka 1.8.2 reads exactly-once outputs read_committed; a Kafka-ML
style sink (kafka-python, avro-python3) feeds our training jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kafkaml.datasources.sinks import RawSink
from kafkaml.kafka import KafkaSettings, make_producer, make_transactional_producer
from model_inference.tests.conftest import (
    TORCH_CODE,
    TORCH_IMPORTS,
    build_tiny_model,
    run_until,
    samples,
    spec_file,
    start_service,
    unique_inference_id,
)
from model_training.tests.jobs import blobs, spec_document, start_job
from tests.compat.conftest import run_client


def test_kafka_python_reads_our_control_message_and_sink_data(
    kafka_ml_python: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    x, y = blobs(50)
    with RawSink(topic=data, deployment_id=300, control_topic=control,
                 kafka_settings=kafka_settings, progress=False) as sink:  # fmt: skip
        sink.send_many(x, y)
    bootstrap = kafka_settings.bootstrap_servers

    announced = run_client(kafka_ml_python, "kafka_python_read.py", bootstrap, control, "1")
    assert announced["error"] is None
    [record] = announced["records"]
    assert int.from_bytes(bytes.fromhex(record["key"]), "big") == 300
    message = json.loads(bytes.fromhex(record["value"]))
    assert message["input_format"] == "RAW" and message["total_msg"] == 50
    written = run_client(kafka_ml_python, "kafka_python_read.py", bootstrap, data, "50")
    assert written["error"] is None
    values = [np.frombuffer(bytes.fromhex(r["value"]), dtype="float32") for r in written["records"]]
    np.testing.assert_array_equal(np.stack(values), x)


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_kafka_ml_consumers_read_our_inference_outputs(
    delivery: str,
    kafka_ml_python: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """kafka-python 2.0.2 the at-least-once outputs; confluent-kafka the exactly-once ones."""
    source, target = new_topic(), new_topic()
    producer = make_producer(kafka_settings)
    for number, row in enumerate(samples(100)):
        producer.produce(source, row.tobytes(), str(number).encode())
    assert producer.flush(30) == 0
    model = build_tiny_model("pytorch", TORCH_IMPORTS, TORCH_CODE)
    spec = spec_file(tmp_path, model, input_topic=source, output_topic=target,
                     inference_id=unique_inference_id(), delivery=delivery)  # fmt: skip
    service = start_service(spec, kafka_settings, max_batch=30)
    try:
        run_until([service], lambda: service.committed_records >= 100)
    finally:
        service.close()

    client = (
        "kafka_python_read.py" if delivery == "at-least-once" else "confluent_read_committed.py"
    )
    answer = run_client(kafka_ml_python, client, kafka_settings.bootstrap_servers, target, "100")
    assert answer.get("error") is None
    if delivery == "exactly-once":  # Kafka-ML's pin, not a newer client
        assert answer["version"] == "1.8.2"
    assert sorted(int(bytes.fromhex(r["key"])) for r in answer["records"]) == list(range(100))
    for record in answer["records"]:  # Kafka-ML's consumers json.loads every value
        assert len(json.loads(bytes.fromhex(record["value"]))["values"]) == 3


@pytest.mark.parametrize(
    ("input_format", "mode"),
    [("RAW", "classic"), ("AVRO", "classic"), ("RAW", "online"), ("RAW", "semi-supervised")],
)
def test_a_kafka_ml_sink_feeds_our_training_job(
    input_format: str,
    mode: str,
    kafka_ml_python: Path,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    control, data, unlabeled = new_topic(), new_topic(), new_topic()
    x, y = blobs(600, seed=3)
    training: dict[str, object] = {"fit_kwargs": {"epochs": 2}}
    if mode == "online":
        training = {"mode": "incremental", "incremental": {"stream_timeout_ms": 4000}, **training}
    if mode == "semi-supervised":
        training = {"mode": "semi-supervised", **training,
                    "semi_supervised": {"rounds": 1, "confidence": 0.9}}  # fmt: skip
    job = start_job(tmp_path, kafka_settings,
                    spec_document("pytorch", control, 201, **training))  # fmt: skip
    run_client(kafka_ml_python, "kafka_ml_sink.py", stdin={
        "bootstrap": kafka_settings.bootstrap_servers, "control_topic": control, "topic": data,
        "deployment_id": 201, "format": input_format, "online": mode == "online",
        "x": x.tolist(), "y": y.tolist(), "unsupervised_topic": unlabeled,
        "unlabeled": blobs(300, seed=4)[0].tolist() if mode == "semi-supervised" else None,
    })  # fmt: skip

    assert job.wait() == 0, job.log()
    assert job.status()[-1] == "finished", job.log()
    assert job.epochs(), job.log()


def test_kafka_python_returns_transaction_markers_as_records_so_it_needs_at_least_once(
    kafka_ml_python: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    """Why `at-least-once` exists: each committed transaction leaves a control record that
    kafka-python 2.0.2 hands to the application (key 00000001), where json.loads fails."""
    topic = new_topic()
    producer = make_transactional_producer(kafka_settings, f"compat-{uuid.uuid4().hex[:8]}")
    for batch in range(2):
        producer.begin_transaction()
        producer.produce(topic, json.dumps({"values": [batch]}).encode(), b"k")
        producer.commit_transaction(30)

    answer = run_client(kafka_ml_python, "kafka_python_read.py",
                        kafka_settings.bootstrap_servers, topic, "4", "15")  # fmt: skip
    assert [r["key"] for r in answer["records"]] == ["6b", "00000001", "6b", "00000001"]
