"""Hostile model code against the real executor (local mode): every attack of the probe fails,
the validation has no network at all, and nothing it started outlives the request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafkaml.frameworks import ModelCodeError
from kafkaml.settings import PROJECT_ROOT
from kafkaml.testing import wait_until
from kafkaml.tests import hostile
from mlcode_executor.client import ExecutorBusy, ExecutorClient
from mlcode_executor.sandbox import Slots

MIB = 1024**2


def test_hostile_model_code_sees_nothing_of_the_host_and_leaves_nothing_behind(
    data_dir: Path, listening: int, other_listening: int
) -> None:
    outside = [PROJECT_ROOT / "mlcode_executor" / "hostile-written", data_dir / "x"]
    target = hostile.targets(
        data_dir, listening, outside, hostile.secrets(data_dir), other_listening
    )
    os.environ["KAFKAML_HOSTILE_TEST_SECRET"] = "in-the-callers-env-only"
    try:
        with pytest.raises(ModelCodeError) as refused:
            ExecutorClient(timeout_s=60, memory_bytes=512 * MIB).validate_model(
                framework="pytorch", imports="", code=hostile.probe_code(target)
            )
    finally:
        del os.environ["KAFKAML_HOSTILE_TEST_SECRET"]

    report = hostile.report_from(str(refused.value))
    hostile.assert_contained(report, network="none")
    assert "in-the-callers-env-only" not in str(report)
    for path in outside:
        assert not path.exists(), f"the validation wrote {path}"
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def test_a_full_executor_answers_busy_at_once_instead_of_queueing_without_bound() -> None:
    slots = Slots(limit=1, wait_s=0.2)
    client = ExecutorClient(timeout_s=30, slots=slots)
    busy = pytest.raises(ExecutorBusy, match="all 1 validation slots are busy")
    with slots.take(), busy:  # a validation in progress holds the only slot
        client.validate_model(framework="pytorch", imports="", code="x = 1")
    assert slots.taken == 0
