"""schemathesis against the live OpenAPI document, with all its checks: no generated request
gets a 5xx answer, an undocumented status code, a body that is not the documented schema, or
acceptance of data the document says is invalid."""

from __future__ import annotations

from typing import Any, cast

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backend.apps.accounts.services import user_api_token
from backend.apps.federated.services import worker_register
from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import finished_result, stored_model

# Operations that run the model code executor (seconds per request in a fresh child process):
# the API tests cover them; fuzzing them would take minutes.
EXECUTOR_OPERATIONS = {"POST /api/models", "PATCH /api/models/{pk}", "POST /api/models/import"}
EXAMPLES_PER_OPERATION = 5
FUZZ_DATASET = {"name": "d", "input_shape": [4], "dataset_restrictions": {}, "samples": 10}
# Every check schemathesis has, but one: positive_data_acceptance expects every schema-valid
# request to be accepted, and no OpenAPI document can say that a configuration's model ids must
# be the user's own models or that a datasource's value must be a control message (those are
# refused with 400 and the field named).
EXCLUDED_CHECKS = [positive_data_acceptance]


@pytest.fixture
def seeded(user: Any, summaries: dict[str, Any]) -> dict[str, int]:
    """Objects for the generated requests to find: ids per kind of path."""
    from django.test import Client

    result = finished_result(user, stored_model(user, summaries))
    worker, _ = worker_register(owner=user, name="w", datasets=[FUZZ_DATASET])
    client = Client(HTTP_AUTHORIZATION=f"Token {user_api_token(user=user)}")
    inference = client.post(
        "/api/inferences",
        {"result_id": result.pk, "input_format": "RAW", "input_topic": "i", "output_topic": "o"},
        content_type="application/json",
    ).json()
    assert result.deployment is not None and result.deployment_id is not None
    return {
        "models": result.model_id,
        "configurations": result.deployment.configuration_id,
        "deployments": result.deployment_id,
        "results": result.pk,
        "inferences": inference["id"],
        "datasources": 1,
        "federated": worker.pk,
    }


@pytest.fixture
def worker_credential(user: Any) -> str:
    """A federated worker's credential, for the endpoints a worker calls."""
    return worker_register(owner=user, name="fuzzed", datasets=[FUZZ_DATASET])[1]


def headers_for(
    path: str, pk: int | None, user_token: str, worker_credential: str = ""
) -> dict[str, str]:
    if path.startswith("/api/federated/worker/") or path == "/api/federated/worker":
        return {"Authorization": f"Bearer {worker_credential}"}
    if path.startswith("/api/jobs/results/"):
        return {"Authorization": f"Bearer {issue_job_token('result', pk or 0)}"}
    if path.startswith("/api/jobs/inferences/"):
        return {"Authorization": f"Bearer {issue_job_token('inference', pk or 0)}"}
    if path.startswith("/api/jobs/"):
        return {"Authorization": f"Bearer {issue_job_token('service')}"}
    return {"Authorization": f"Token {user_token}"}


@pytest.mark.django_db(transaction=True)
def test_fuzzing_the_live_openapi_document_with_all_checks_finds_no_failure(
    live_server: Any,
    user: Any,
    seeded: dict[str, int],
    worker_credential: str,
    settings: Any,
    kafka_settings: Any,
    topic: str,
) -> None:
    # Datasource replays publish to the test broker's fresh topic, not to a default broker.
    settings.KAFKA = kafka_settings
    settings.KAFKAML = settings.KAFKAML.model_copy(update={"control_topic": topic})
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    token = user_api_token(user=user)
    failures: list[str] = []
    operations = [cast("Ok[Any]", result).ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        if f"{operation.method.upper()} {operation.path}" in EXECUTOR_OPERATIONS:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(
                    operation, mode, live_server.url, (token, worker_credential), seeded, failures
                )
            except hypothesis.errors.Unsatisfiable:
                # No request of this mode exists (e.g. no invalid body for a body-less call).
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:30])


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    tokens: tuple[str, str],
    seeded: dict[str, int],
    failures: list[str],
) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES_PER_OPERATION,
        # The same examples every run: a failure here is reproducible, never a fluke.
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        pk = None
        if "{pk}" in operation.path:
            # Aim at a real object half of the time, so request bodies reach the services.
            pk = (
                seeded.get(_kind(operation.path))
                if case.path_parameters.get("pk", 0) % 2 == 0
                else case.path_parameters.get("pk")
            )
            case.path_parameters["pk"] = pk
        try:
            case.call_and_validate(
                base_url=base_url,
                headers=headers_for(operation.path, pk, *tokens),
                excluded_checks=EXCLUDED_CHECKS,
            )
        except FailureGroup as group:
            failures.extend(
                f"{operation.method.upper()} {operation.path} ({mode.value}): "
                f"{failure.title}: {failure.message[:300]}"
                for failure in group.exceptions
            )

    check()


def _kind(path: str) -> str:
    parts = path.strip("/").split("/")
    return parts[2] if parts[1] == "jobs" else parts[1]
