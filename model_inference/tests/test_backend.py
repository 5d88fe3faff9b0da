"""A replica against the real backend over HTTP: its scoped token, its spec, a swap by the API."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.kafkaml_backend.test_settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from backend.apps.accounts.services import user_api_token  # noqa: E402
from backend.apps.mlmodels.services import model_create_validated  # noqa: E402
from backend.kafkaml_backend.auth import issue_job_token  # noqa: E402
from backend.testing import finished_result  # noqa: E402
from kafkaml.frameworks import get_framework  # noqa: E402
from kafkaml.kafka import KafkaSettings  # noqa: E402
from model_inference.backend import BackendError, JobApiClient  # noqa: E402
from model_inference.clients import build_service  # noqa: E402
from model_inference.settings import InferenceSettings  # noqa: E402
from model_inference.spec import BackendSpecSource  # noqa: E402
from model_inference.tests.conftest import (  # noqa: E402
    RAW_CONFIG,
    TinyModel,
    produce_samples,
    run_until,
    samples,
    version_of,
)
from model_inference.tests.reader import read_committed  # noqa: E402

if TYPE_CHECKING:
    from kafkaml.frameworks.pytorch import PyTorchFramework

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_replica_serves_the_backends_model_and_swaps_when_the_api_swaps(
    live_server: Any,
    torch_model: TinyModel,
    other_torch_model: TinyModel,
    new_topic: Callable[..., str],
    kafka_settings: KafkaSettings,
) -> None:
    owner = get_user_model().objects.create_user(username=f"u{uuid.uuid4().hex[:8]}")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=owner)}")
    model = _stored(owner, torch_model)
    first = finished_result(owner, model, torch_model.artifact)
    second = finished_result(owner, model, other_torch_model.artifact)
    source, target = new_topic(partitions=1), new_topic(partitions=1)
    created = api.post("/api/inferences", {
        "result_id": first.pk, "replicas": 1, "input_format": "RAW",
        "input_config": RAW_CONFIG, "input_topic": source, "output_topic": target,
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    inference = created.json()
    client = JobApiClient(live_server.url, issue_job_token("inference", inference["id"]))
    settings = InferenceSettings(id=inference["id"], replica="0", max_batch=50,
                                 spec_poll_s=0.05, session_timeout_ms=6000)  # fmt: skip
    _, service = build_service(settings, kafka_settings, BackendSpecSource(client, inference["id"]))
    service.subscribe(source)
    x = samples(400)
    produce_samples(kafka_settings, source, x[:300])
    try:
        run_until([service], lambda: service.committed_records >= 150)
        service.settle()
        before_swap = service.committed_records
        swapped = api.post(f"/api/inferences/{inference['id']}/swap",
                           {"result_id": second.pk}, format="json")  # fmt: skip
        assert swapped.status_code == 200, swapped.json()
        new_version = swapped.json()["model_version"]
        run_until([service], lambda: service.model_version == new_version)
        produce_samples(kafka_settings, source, x[300:], first_key=300)
        run_until([service], lambda: service.committed_records >= len(x))
    finally:
        service.close()  # nothing more is answered: a duplicate would be read below

    outputs = read_committed(kafka_settings, target)
    assert [int(r.key()) for r in outputs] == list(range(len(x)))  # type: ignore[arg-type]
    versions = [version_of(r) for r in outputs]
    # The new model is loaded off the serving path: it serves from a batch boundary after the
    # swap on, every record before it answered by the old model.
    switch = versions.index(new_version)
    assert switch >= before_swap
    assert versions == [inference["model_version"]] * switch + [new_version] * (len(x) - switch)


def test_a_wrong_token_is_refused_with_the_backends_message(live_server: Any) -> None:
    client = JobApiClient(live_server.url, issue_job_token("inference", 999_999) + "x")
    with pytest.raises(BackendError) as raised:
        client.inference_spec(999_999)
    assert raised.value.status in (401, 403)
    assert "token" in raised.value.message.lower()


def _stored(owner: Any, model: TinyModel) -> Any:
    """The model stored through the backend's service, with the frameworks' real summary."""
    summary = (
        cast("PyTorchFramework", get_framework(model.framework))
        .build(model.imports, model.code, require_training=False)
        .summary()
    )
    return model_create_validated(
        owner=owner, name="tiny", framework=model.framework, imports=model.imports,
        code=model.code, distributed=False, summary=summary.to_dict(), upper=None,
    )  # fmt: skip
