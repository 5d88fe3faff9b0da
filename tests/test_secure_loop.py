"""The whole loop over a SASL_SSL (SCRAM-SHA-512) broker: a sink streams, the local runner's
training job trains, the control logger records the datasource, an inference replica predicts.

Every process is the real one (`python -m model_training`, `model_inference`,
`kafka_control_logger`), started with the Kafka settings of the backend's environment: this is
what shows that the runner passes the security settings through to the jobs it spawns. A wrong
password makes a job and the control logger fail within seconds, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")

import django

django.setup()

from confluent_kafka import TopicPartition  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from pytest_django.live_server_helper import LiveServer  # noqa: E402

from backend.apps.datasources.models import Datasource  # noqa: E402
from backend.apps.inferences import services as inferences  # noqa: E402
from backend.apps.processes.models import JobProcess  # noqa: E402
from backend.apps.training.models import TrainingResult  # noqa: E402
from backend.kafkaml_backend.auth import issue_job_token  # noqa: E402
from backend.kafkaml_backend.runners.local import (  # noqa: E402
    _alive,
    kafka_environment,
    watched_pids,
)
from backend.testing import PYTORCH_MODEL, deployed, stored_model  # noqa: E402
from kafkaml.datasources import RawSink  # noqa: E402
from kafkaml.frameworks import get_framework  # noqa: E402
from kafkaml.kafka import (  # noqa: E402
    KafkaSettings,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from kafkaml.testing import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120.0
SAMPLES = 300


@pytest.fixture(scope="module")
def torch_summary() -> dict[str, Any]:
    code = PYTORCH_MODEL
    framework = get_framework(code.framework)
    return framework.build(code.imports, code.code, require_training=False).summary().to_dict()


@pytest.fixture
def secure_backend(
    transactional_db: None, secure_kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A live backend with the local runner, whose own environment names the SASL_SSL broker
    (the runner hands its jobs exactly that); yields the fresh control topic."""
    server = LiveServer("127.0.0.1:0")
    control_topic = f"control-{uuid.uuid4().hex[:12]}"
    ensure_topics(make_admin(secure_kafka), [control_topic])
    update = {"runner": "local", "backend_url": server.url, "control_topic": control_topic}
    monkeypatch.setattr(settings, "KAFKAML", settings.KAFKAML.model_copy(update=update))
    monkeypatch.setattr(settings, "KAFKA", secure_kafka)
    for name in [name for name in os.environ if name.startswith("KAFKAML_KAFKA_")]:
        monkeypatch.delenv(name)
    for name, value in kafka_environment(secure_kafka).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKAML_TRAINING_SEED", "7")
    monkeypatch.setenv("KAFKAML_INFERENCE_SESSION_TIMEOUT_MS", "6000")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    yield control_topic
    for row in JobProcess.objects.filter(ended_at__isnull=True):
        if _alive(row.pid):
            os.killpg(row.pid, signal.SIGKILL)
    wait_until(lambda: not watched_pids(), "the watchers to record every exit", DEADLINE_S)
    server.stop()


@pytest.fixture
def start_control_logger(
    secure_backend: str, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `python -m kafka_control_logger` with the test's (the backend's) environment."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "KAFKAML_BACKEND_URL": settings.KAFKAML.backend_url,
            "KAFKAML_SERVICE_TOKEN": issue_job_token("service"),
            "KAFKAML_CONTROL_TOPIC": secure_backend,
            "KAFKAML_CONTROL_LOGGER_GROUP_ID": f"logger-{uuid.uuid4().hex[:12]}",
        }
        with (tmp_path / f"control-logger-{len(started)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kafka_control_logger"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def _blobs(count: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    centers = np.random.default_rng(42).normal(0, 3, size=(3, 4))
    y = rng.integers(0, 3, size=count).astype(np.uint8)
    return (centers[y] + rng.normal(0, 1, size=(count, 4))).astype(np.float32), y


def _ended(result: TrainingResult) -> TrainingResult | None:
    result.refresh_from_db()
    return result if result.status in ("finished", "failed") else None


def _predictions(kafka: KafkaSettings, topic: str, count: int) -> list[Any]:
    consumer = make_consumer(kafka, isolation_level="read_committed")
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[Any] = []
    try:
        wait_until(
            lambda: (
                (found.extend(m for m in consumer.consume(100, 0.5) if not m.error()))
                or len(found) >= count
            ),
            f"{count} predictions",
            DEADLINE_S,
        )
    finally:
        consumer.close()
    return found


def test_sink_training_control_logger_and_inference_run_over_sasl_ssl(
    secure_kafka: KafkaSettings,
    secure_backend: str,
    start_control_logger: Callable[[], subprocess.Popen[bytes]],
    torch_summary: dict[str, Any],
) -> None:
    owner = get_user_model().objects.create_user(username="secure", password="pw")
    model = stored_model(owner, {"pytorch": torch_summary}, "pytorch")
    deployment = deployed(owner, [model], batch_size=32, fit_kwargs={"epochs": 1})
    [result] = deployment.results.all()
    logger = start_control_logger()
    x, y = _blobs(SAMPLES)
    data_topic = f"data-{uuid.uuid4().hex[:12]}"
    sink = RawSink(
        topic=data_topic, deployment_id=deployment.pk, control_topic=secure_backend,
        kafka_settings=secure_kafka, progress=False, test_rate=0.2,
    )  # fmt: skip
    sink.send_many(x, y)
    sink.close()

    ended = wait_until(lambda: _ended(result), "the training result to end", DEADLINE_S)
    assert ended.status == "finished", ended.error
    assert set(ended.test_metrics) >= {"loss", "accuracy"}  # it read the announced test split
    datasource = wait_until(
        lambda: Datasource.objects.filter(deployment=deployment).first(),
        "the control logger to record the datasource",
        DEADLINE_S,
    )
    assert datasource.topic == f"{data_topic}:0:0:{SAMPLES}"
    assert logger.poll() is None

    source, target = (f"{name}-{uuid.uuid4().hex[:12]}" for name in ("in", "out"))
    ensure_topics(make_admin(secure_kafka), [source, target])
    inference = inferences.inference_create(
        owner=owner,
        result=ended,
        settings=inferences.InferenceSettings(
            input_format="RAW", input_topic=source, output_topic=target,
            input_config={"data_type": "float32", "data_reshape": "4"},
        ),
    )  # fmt: skip
    producer = make_producer(secure_kafka)
    for sample in x[:20]:
        producer.produce(source, sample.tobytes())
    assert producer.flush(30) == 0

    outputs = _predictions(secure_kafka, target, 20)
    assert len(outputs) == 20
    assert all(len(json.loads(message.value())["values"]) == 3 for message in outputs)
    inferences.inference_stop(inference=inference)


def test_a_wrong_password_fails_the_job_and_stops_the_control_logger_saying_why(
    secure_backend: str,
    start_control_logger: Callable[[], subprocess.Popen[bytes]],
    torch_summary: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("KAFKAML_KAFKA_SASL_PASSWORD", "not-the-password")  # the runner's too
    owner = get_user_model().objects.create_user(username="secure", password="pw")
    model = stored_model(owner, {"pytorch": torch_summary}, "pytorch")
    deployment = deployed(owner, [model], batch_size=32, fit_kwargs={"epochs": 1})
    [result] = deployment.results.all()
    logger = start_control_logger()

    assert logger.wait(DEADLINE_S) == 1
    log = (tmp_path / "control-logger-0.log").read_text()
    assert "SASL authentication error" in log and "not-the-password" not in log
    ended = wait_until(lambda: _ended(result), "the training result to end", DEADLINE_S)
    assert ended.status == "failed"
    assert "SASL authentication error" in ended.error
