"""`python -m model_inference` as a process: SIGTERM, fatal errors, exit statuses."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests
from confluent_kafka import Consumer, TopicPartition

from kafkaml.kafka import KafkaSettings
from model_inference.clients import group_id
from model_inference.tests.conftest import (
    TORCH_CODE,
    TORCH_IMPORTS,
    Stream,
    TinyModel,
    build_tiny_model,
    produce_samples,
    samples,
    spec_file,
)
from model_inference.tests.reader import OutputReader, read_committed
from model_inference.tests.replicas import Replica


def test_sigterm_commits_the_batch_in_hand_and_exits_zero(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    consumer_factory: Callable[..., Consumer],
    tmp_path: Path,
) -> None:
    source, target, spec = new_stream(torch_model, partitions=2)
    inference_id = spec.value["inference_id"]
    x = samples(50_000)
    produce_samples(kafka_settings, source, x)
    # Small batches: the stream takes long enough to be stopped in the middle.
    port = _free_port()
    replica = Replica(spec.path, kafka_settings, "0", tmp_path, KAFKAML_INFERENCE_MAX_BATCH="20",
                      KAFKAML_INFERENCE_METRICS_PORT=str(port))  # fmt: skip
    successor = Replica(spec.path, kafka_settings, "0", tmp_path)
    try:
        with OutputReader(kafka_settings, target) as reader:
            replica.start()
            reader.wait_for(500, 120)
            metrics = _scrape(port)
            status = replica.terminate()
        assert status == 0, replica.tail()
        assert metrics["kafkaml_inference_records_in_total"] >= 500
        assert metrics['kafkaml_inference_records_out_total{destination="output"}'] >= 500
        assert metrics['kafkaml_inference_model_version{version="1"}'] == 1
        for name in ("kafkaml_inference_batch_size_count", "kafkaml_inference_consumer_lag",
                     "kafkaml_inference_processing_seconds_count",
                     "kafkaml_inference_dead_letters_total"):  # fmt: skip
            assert name in metrics
        group = consumer_factory(group_id(inference_id))
        committed = group.committed([TopicPartition(source, p) for p in (0, 1)], timeout=30)
        answered = sum(max(tp.offset, 0) for tp in committed)
        assert 500 <= answered < len(x)  # stopped mid-stream
        assert len(read_committed(kafka_settings, target)) == answered  # the replica exited

        with OutputReader(kafka_settings, target) as reader:
            successor.start()  # the rest, exactly once
            reader.wait_for(len(x), 120)
            assert successor.terminate() == 0, successor.tail()
            outputs = reader.read_to_end()  # the successor exited: a duplicate would be read
    finally:
        replica.stop()
        successor.stop()
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))


def test_a_fatal_error_exits_non_zero_with_the_reason_on_the_last_line(
    torch_model: TinyModel, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    spec = spec_file(tmp_path, torch_model, input_topic="unused-in", output_topic="unused-out")
    spec.value["artifact_path"] = "missing.pt"
    spec.path.write_text(json.dumps(spec.value))
    replica = Replica(spec.path, kafka_settings, "0", tmp_path)
    replica.start()
    assert replica.process is not None
    assert replica.process.wait(120) == 1
    last_line = replica.tail().strip().splitlines()[-1]
    assert last_line.startswith("inference failed: SpecError: cannot read the model artifact")
    assert "missing.pt" in last_line


def test_a_model_failing_on_the_answering_thread_ends_the_replica_non_zero_with_the_reason(
    new_stream: Callable[..., Stream], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # Under a backlog (full batches) batches are answered on the answering thread; this model
    # answers at most two rows whatever the batch, so every full batch fails there.
    two_rows = build_tiny_model("pytorch", TORCH_IMPORTS,
                                TORCH_CODE.replace("return self.layers(x)",
                                                   "return self.layers(x)[:2]"))  # fmt: skip
    source, target, spec = new_stream(two_rows, delivery="at-least-once")
    produce_samples(kafka_settings, source, samples(640))
    replica = Replica(spec.path, kafka_settings, "0", tmp_path, KAFKAML_INFERENCE_MAX_BATCH="64")
    try:
        replica.start()
        assert replica.process is not None
        assert replica.process.wait(120) == 1, replica.tail()
    finally:
        replica.stop()
    last_line = replica.tail().strip().splitlines()[-1]
    assert last_line.startswith("inference failed: ModelOutputError: the model's prediction"), (
        last_line
    )
    assert "for a batch of 64 records" in last_line
    assert read_committed(kafka_settings, target) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    """The replica's /metrics as {sample name with labels: value}."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
