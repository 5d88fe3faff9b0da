"""Datasources: recorded by the control logger's service token, listed, replayed on Kafka."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from backend.apps.datasources.models import Datasource
from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import deployed, stored_model
from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import ControlMessage, InputFormat, decode_deployment_id

pytestmark = pytest.mark.django_db


def control_value(topic: str = "data:0:0:100") -> dict[str, Any]:
    message = ControlMessage(
        deployment_id=1,
        topic=topic,
        input_format=InputFormat.RAW,
        input_config={
            "data_type": "float32",
            "label_type": "uint8",
            "data_reshape": "4",
            "label_reshape": "",
        },
        description="iris",
        validation_rate=0.1,
        test_rate=0.1,
        total_msg=100,
    )
    return message.to_value()


@pytest.fixture
def logger_api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('service')}")
    return client


def record(client: APIClient, deployment_id: int, offset: int = 0, **changes: Any) -> Any:
    body = {
        "deployment_id": deployment_id,
        "control_topic": "control",
        "partition": 0,
        "offset": offset,
        "value": control_value(),
        **changes,
    }
    return client.post("/api/jobs/datasources", body, format="json")


def test_recording_the_same_control_record_twice_stores_one_datasource(
    logger_api: APIClient, api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    deployment = deployed(user, [stored_model(user, summaries)])
    first, again = record(logger_api, deployment.pk), record(logger_api, deployment.pk)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    listed = api.get(f"/api/datasources?deployment_id={deployment.pk}").json()
    assert [d["topic"] for d in listed] == ["data:0:0:100"]
    assert listed[0]["input_config"]["data_type"] == "float32"
    assert listed[0]["total_msg"] == 100


def test_a_value_that_is_not_a_control_message_is_refused(
    logger_api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    deployment = deployed(user, [stored_model(user, summaries)])
    response = record(logger_api, deployment.pk, value={"topic": 5})
    assert response.status_code == 400
    assert not Datasource.objects.exists()


def test_a_control_message_for_an_unknown_deployment_is_refused_with_404(
    logger_api: APIClient,
) -> None:
    assert record(logger_api, 4242).status_code == 404


def test_replaying_a_datasource_publishes_its_control_message_for_the_other_deployment(
    api: APIClient,
    logger_api: APIClient,
    user: Any,
    summaries: dict[str, Any],
    kafka_settings: KafkaSettings,
    topic: str,
    consumer_factory: Callable[..., Any],
) -> None:
    model = stored_model(user, summaries)
    source, target = deployed(user, [model]), deployed(user, [model])
    datasource = record(logger_api, source.pk).json()
    from django.conf import settings

    with override_settings(
        KAFKA=kafka_settings, KAFKAML=settings.KAFKAML.model_copy(update={"control_topic": topic})
    ):
        response = api.post(
            f"/api/datasources/{datasource['id']}/replay",
            {"deployment_id": target.pk},
            format="json",
        )
    assert response.status_code == 202
    consumer = consumer_factory()
    consumer.subscribe([topic])
    record_ = None
    for _ in range(60):
        record_ = consumer.poll(1.0)
        if record_ is not None and record_.error() is None:
            break
    assert record_ is not None and record_.error() is None
    assert decode_deployment_id(record_.key()) == target.pk
    replayed = ControlMessage.from_record(record_.key(), record_.value())
    assert replayed.topic == "data:0:0:100"
    assert replayed.deployment_id == target.pk


def test_a_user_cannot_replay_into_another_users_deployment(
    api: APIClient, logger_api: APIClient, user: Any, other_user: Any, summaries: dict[str, Any]
) -> None:
    mine = deployed(user, [stored_model(user, summaries)])
    theirs = deployed(other_user, [stored_model(other_user, summaries)])
    datasource = record(logger_api, mine.pk).json()
    response = api.post(
        f"/api/datasources/{datasource['id']}/replay", {"deployment_id": theirs.pk}, format="json"
    )
    assert response.status_code == 404
