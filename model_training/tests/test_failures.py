"""How the job fails, stops and ignores what is not for it: the real process on the real broker."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import TopicRange
from kafkaml.testing import wait_until
from model_training.job import EXIT_FAILED, EXIT_STOPPED
from model_training.tests.jobs import (
    FEATURES,
    announce,
    blobs,
    produce_samples,
    ranges_text,
    spec_document,
    start_job,
)


def test_job_ignores_other_deployments_and_stale_messages_then_fails_after_its_timeout(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    ranges = produce_samples(kafka_settings, data, *blobs(100))
    # A message for this deployment from an older run, then one for another deployment.
    announce(kafka_settings, control, 401, ranges_text(ranges), total=100)
    created = datetime.now(UTC) + timedelta(seconds=1)
    wait_until(lambda: datetime.now(UTC) > created, "the deployment's creation time", timeout_s=5)
    announce(kafka_settings, control, 402, ranges_text(ranges), total=100)
    spec = spec_document("pytorch", control, 401, created_at=created)
    job = start_job(tmp_path, kafka_settings, spec, KAFKAML_TRAINING_CONTROL_TIMEOUT_S="6")

    assert job.wait() == EXIT_FAILED, job.log()
    status, reason = job.status()
    assert status == "failed"
    assert "ControlTimeoutError" in reason and "deployment 401" in reason
    assert not job.epochs()


def test_a_raw_record_of_the_wrong_size_fails_the_job_naming_topic_partition_and_offset(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    x, y = blobs(200)
    good = produce_samples(kafka_settings, data, x, y)
    producer = make_producer(kafka_settings)
    producer.produce(data, np.zeros(FEATURES + 1, np.float32).tobytes(), y[0].tobytes())
    assert producer.flush(30) == 0
    bad_offset = good[0].end
    ranges = [TopicRange(data, 0, 0, bad_offset + 1)]
    spec = spec_document("pytorch", control, 403)
    announce(kafka_settings, control, 403, ranges_text(ranges), total=bad_offset + 1)
    job = start_job(tmp_path, kafka_settings, spec)

    assert job.wait() == EXIT_FAILED, job.log()
    status, reason = job.status()
    assert status == "failed"
    assert "DecodeError" in reason
    assert f"topic {data}, partition 0, offset {bad_offset}" in reason


def test_sigterm_ends_a_waiting_job_promptly_with_the_stop_exit_code(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control = new_topic()
    job = start_job(tmp_path, kafka_settings, spec_document("pytorch", control, 404))
    wait_until(
        lambda: "waiting for the control message" in job.log(), "the job to wait", timeout_s=120
    )
    job.process.send_signal(signal.SIGTERM)

    assert job.wait(timeout=30) == EXIT_STOPPED, job.log()
    assert job.status() == ["running"]  # recording `stopped` is the backend's part


def test_a_broker_that_never_answers_fails_the_job_with_a_named_reason(
    tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    unreachable = kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:9"})
    job = start_job(
        tmp_path,
        unreachable,
        spec_document("pytorch", "control", 405),
        KAFKAML_TRAINING_CONTROL_TIMEOUT_S="4",
    )

    assert job.wait() == EXIT_FAILED, job.log()
    status, reason = job.status()
    assert status == "failed"
    assert "BrokerUnreachableError" in reason


def test_an_announced_stream_of_no_records_fails_the_result_with_a_sentence_that_says_so(
    tmp_path: Path, kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    control, data = new_topic(), new_topic()
    spec = spec_document("pytorch", control, 406)
    announce(kafka_settings, control, 406, ranges_text([TopicRange(data, 0, 0, 0)]), total=0)
    job = start_job(tmp_path, kafka_settings, spec)

    assert job.wait() == EXIT_FAILED, job.log()
    status, reason = job.status()
    assert status == "failed"
    assert "EmptyStreamError" in reason
    assert "announces a data stream of no records" in reason, reason
