"""Recording control messages as datasources, and replaying one into another deployment."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from backend.apps.datasources.models import Datasource
from backend.apps.training.models import Deployment
from backend.kafkaml_backend.errors import (
    ApplicationError,
    NotFoundError,
    ServiceUnavailableError,
)
from kafkaml.kafka import make_producer
from kafkaml.protocol import ControlMessage, ControlMessageError


def datasource_record(
    *,
    deployment_id: int,
    control_topic: str,
    partition: int,
    offset: int,
    value: dict[str, Any],
    sent_at: datetime.datetime | None = None,
) -> tuple[Datasource, bool]:
    """Record the control message at (control_topic, partition, offset); (datasource, created).

    Idempotent: the same record again returns the stored datasource with created False.
    Raises NotFoundError for an unknown deployment, ApplicationError for a value that is not a
    control message.
    """
    existing = Datasource.objects.filter(
        control_topic=control_topic, partition=partition, offset=offset
    ).first()
    if existing is not None:
        return existing, False
    try:
        message = ControlMessage.from_value(deployment_id, value)
    except ControlMessageError as error:
        raise ApplicationError(f"Not a control message: {error}", {"offset": offset}) from error
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFoundError("No deployment has this id.", {"deployment_id": deployment_id})
    try:
        with transaction.atomic():
            datasource = Datasource.objects.create(
                owner_id=deployment.owner_id,
                deployment=deployment,
                control_topic=control_topic,
                partition=partition,
                offset=offset,
                sent_at=sent_at,
                **_columns(message),
            )
    except IntegrityError:
        # A concurrent retry of the same record won the race: the row exists now.
        return Datasource.objects.get(
            control_topic=control_topic, partition=partition, offset=offset
        ), False
    return datasource, True


def _columns(message: ControlMessage) -> dict[str, Any]:
    return {
        "topic": message.topic,
        "input_format": message.input_format.value,
        "input_config": message.input_config,
        "description": message.description,
        "validation_rate": message.validation_rate,
        "test_rate": message.test_rate,
        "total_msg": message.total_msg,
        "incremental": message.incremental,
        "message": message.to_value(),
    }


def datasource_replay(*, datasource: Datasource, deployment: Deployment) -> None:
    """Publish the datasource's control message again, keyed by `deployment`'s id, so that
    deployment's jobs train on the same data.

    Nothing is written to the database, so the message is published at once (no on_commit to
    wait for) and the caller learns whether Kafka took it. Raises ServiceUnavailableError when
    Kafka does not acknowledge the message.
    """
    message = ControlMessage.from_value(datasource.deployment_id, datasource.message)
    _publish(message.with_deployment(deployment.pk))


def _publish(message: ControlMessage) -> None:
    key, value = message.to_record()
    producer = make_producer(settings.KAFKA)
    failures: list[str] = []
    producer.produce(
        settings.KAFKAML.control_topic,
        key=key,
        value=value,
        on_delivery=lambda error, _record: failures.append(str(error)) if error else None,
    )
    remaining = producer.flush(15)
    if remaining or failures:
        raise ServiceUnavailableError(
            "Kafka did not accept the control message.", {"errors": failures}
        )
