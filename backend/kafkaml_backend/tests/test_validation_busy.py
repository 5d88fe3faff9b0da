"""The executor's concurrency limit through the API: a full executor answers at once, 503, in the
API's one error shape, instead of holding the request (and its thread) without bound."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from mlcode_executor.client import local_slots


def test_a_model_posted_while_every_validation_slot_is_taken_is_answered_503_busy(
    api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKAML_EXECUTOR_MAX_CONCURRENT", "1")
    monkeypatch.setenv("KAFKAML_EXECUTOR_QUEUE_WAIT_S", "0.1")
    local_slots.cache_clear()  # read the settings above, as a fresh backend process would
    try:
        with local_slots().take():  # a validation in progress
            response = api.post(
                "/api/models",
                {"name": "m", "framework": "pytorch", "imports": "", "code": "x = 1"},
                format="json",
            )
    finally:
        local_slots.cache_clear()

    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"message", "extra"}
    assert "all 1 validation slots are busy" in body["message"]
