"""Federated training through the real backend over HTTP: workers registered there, each with
the credential it was issued, discover the deployment their datasets fit and join it; the
coordinator job gets their keys with its own job token; a worker whose dataset does not fit is
not selected. Real broker, real `python -m model_training` and `python -m model_training.federated`
processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")

import django

django.setup()

from confluent_kafka.admin import AdminClient  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from pytest_django.live_server_helper import LiveServer  # noqa: E402

from backend.apps.federated.models import FederatedMembership  # noqa: E402
from backend.apps.federated.services import worker_register, worker_revoke  # noqa: E402
from backend.apps.mlmodels.models import Configuration, MLModel  # noqa: E402
from backend.apps.training.models import Deployment, TrainingMode, TrainingResult  # noqa: E402
from backend.kafkaml_backend.auth import issue_job_token  # noqa: E402
from kafkaml.kafka import KafkaSettings  # noqa: E402
from model_training.federated.tests.rounds import (  # noqa: E402
    Deployment as Exchange,
)
from model_training.federated.tests.rounds import (  # noqa: E402
    WorkerProcess,
    federated_deployment,
    start_worker,
)
from model_training.tests.jobs import FEATURES, TORCH_CODE, TORCH_IMPORTS, start_job  # noqa: E402

# 80 % of each share trains; worker-c's 24 samples fall short of min_data.
SIZES = {"worker-a": 60, "worker-b": 90, "worker-c": 30}
TRAIN = {"worker-a": 48, "worker-b": 72, "worker-c": 24}


@pytest.fixture
def backend(transactional_db: None) -> Iterator[str]:
    server = LiveServer("127.0.0.1:0")
    yield server.url
    server.stop()


@pytest.fixture
def exchange(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient, new_topic: Callable[..., str]
) -> Iterator[Exchange]:
    yield from federated_deployment(kafka_settings, kafka_admin, new_topic, SIZES)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()


def _federated_result(deployment_id: int) -> TrainingResult:
    owner = get_user_model().objects.create_user(  # type: ignore[attr-defined]
        username="owner", password="pw"
    )
    model = MLModel.objects.create(
        owner=owner, name="net", framework="pytorch", imports=TORCH_IMPORTS, code=TORCH_CODE,
        summary={"input_shape": [None, FEATURES], "output_shape": [None, 3], "params": 1},
    )  # fmt: skip
    configuration = Configuration.objects.create(owner=owner, name="one")
    configuration.ml_models.add(model)
    options = {
        **{"rounds": 2, "local_epochs": 1, "min_clients": 2, "min_data": 40},
        **{"data_restrictions": {}, "round_timeout_s": 120, "strategy": "fedavg", "mu": 0.0},
    }
    deployment = Deployment.objects.create(
        pk=deployment_id,  # the exchange topics' fresh id
        owner=owner, configuration=configuration, batch_size=16,
        mode=TrainingMode.FEDERATED, federated=options,
    )  # fmt: skip
    return TrainingResult.objects.create(owner=owner, deployment=deployment, model=model)


def test_workers_with_issued_credentials_discover_join_and_train_the_deployment_that_fits(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    backend: str,
    exchange: Exchange,
    workers: list[WorkerProcess],
) -> None:
    result = _federated_result(exchange.deployment_id)
    registered = {
        name: worker_register(
            owner=result.owner,
            name=name,
            datasets=[
                {
                    "name": "blobs",
                    "input_shape": [FEATURES],
                    "dataset_restrictions": {},
                    "samples": TRAIN[name],
                }
            ],
        )
        for name in SIZES
    }
    job = start_job(
        tmp_path, kafka_settings, {},
        KAFKAML_BACKEND_URL=backend, KAFKAML_RESULT_IDS=str(result.pk),
        KAFKAML_JOB_TOKEN=issue_job_token("result", result.pk),
        KAFKAML_TRAINING_SPEC_FILE="", KAFKAML_TRAINING_OUTPUT_DIR="",
        KAFKAML_FEDERATED_CHUNK_BYTES="2048",
    )  # fmt: skip
    workers += [
        start_worker(
            tmp_path,
            kafka_settings,
            exchange,
            name,
            cli=name == "worker-b",
            KAFKAML_BACKEND_URL=backend,
            KAFKAML_WORKER_CREDENTIAL=registered[name][1],
            KAFKAML_WORKER_ID="",
            KAFKAML_FEDERATED_DEPLOYMENT_ID="",
            KAFKAML_WORKER_IDLE_TIMEOUT_S="3",
            KAFKAML_WORKER_DISCOVERY_INTERVAL_S="0.5",
        )
        for name in SIZES
    ]
    assert job.wait(300) == 0, job.log()
    result.refresh_from_db()
    assert result.status == "finished", result.error
    assert [epoch["epoch"] for epoch in result.epochs] == [0, 1]
    for worker in workers:
        assert worker.process.wait(120) == 0, worker.log()
    joined = FederatedMembership.objects.filter(deployment_id=exchange.deployment_id)
    assert sorted(m.worker.name for m in joined) == ["worker-a", "worker-b"]
    assert "joined deployment" not in workers[2].log(), "worker-c's data is under min_data"
    for worker in workers[:2]:
        assert f"joined deployment {exchange.deployment_id}" in worker.log()
        assert "round 1: update sent" in worker.log()


def test_a_worker_whose_credential_was_revoked_is_refused_and_exits_non_zero(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    backend: str,
    exchange: Exchange,
    workers: list[WorkerProcess],
) -> None:
    result = _federated_result(exchange.deployment_id)
    dataset = {"name": "blobs", "input_shape": [FEATURES], "dataset_restrictions": {},
               "samples": TRAIN["worker-a"]}  # fmt: skip
    worker, credential = worker_register(owner=result.owner, name="a", datasets=[dataset])
    worker_revoke(worker=worker)
    workers.append(
        start_worker(
            tmp_path,
            kafka_settings,
            exchange,
            "worker-a",
            KAFKAML_BACKEND_URL=backend,
            KAFKAML_WORKER_CREDENTIAL=credential,
            KAFKAML_WORKER_ID="",
            KAFKAML_FEDERATED_DEPLOYMENT_ID="",
        )
    )
    assert workers[0].process.wait(120) == 1, workers[0].log()
    assert "This worker's credential has been revoked." in workers[0].log()
    assert not FederatedMembership.objects.exists()
