"""Spec documents: what the job accepts and the named error for what it cannot use."""

from __future__ import annotations

import pytest

from model_training.spec import SpecError, parse_spec
from model_training.tests.jobs import spec_document


def test_spec_of_an_indefinite_incremental_deployment_never_times_out() -> None:
    document = spec_document(
        "tensorflow",
        "control",
        1,
        mode="incremental",
        incremental={"stream_timeout_ms": 5000, "indefinite": True, "monitoring_metric": "loss"},
    )
    spec = parse_spec([document])
    assert spec.incremental.stream_timeout_ms is None
    assert spec.incremental.monitoring_metric == "loss"


def test_kafka_ml_stream_timeout_of_minus_one_never_ends() -> None:
    document = spec_document(
        "pytorch", "c", 1, mode="incremental", incremental={"stream_timeout": -1}
    )
    assert parse_spec([document]).incremental.stream_timeout_ms is None


def test_several_results_need_the_distributed_mode() -> None:
    documents = [spec_document("tensorflow", "c", 1, result_id=i) for i in (1, 2)]
    with pytest.raises(SpecError, match="distributed"):
        parse_spec(documents)


def test_chain_results_keep_their_edge_first_order() -> None:
    documents = [
        spec_document("tensorflow", "c", 1, result_id=i, mode="distributed") for i in (5, 3, 4)
    ]
    assert parse_spec(documents).result_ids == [5, 3, 4]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "swarm"}, "training mode"),
        ({"mode": "federated", "federated": {"min_clients": 0}}, "min_clients"),
        ({"mode": "federated", "federated": {"strategy": "fedsgd"}}, "strategy"),
        ({"batch_size": 0}, "batch_size"),
        ({"incremental": {"indefinite": True}}, "monitoring_metric"),
    ],
)
def test_unusable_training_settings_are_named(change: dict[str, object], message: str) -> None:
    document = spec_document("tensorflow", "c", 1)
    document["training"].update(change)
    with pytest.raises(SpecError, match=message):
        parse_spec([document])


def test_a_spec_without_a_creation_time_is_refused() -> None:
    document = spec_document("tensorflow", "c", 1)
    document["deployment_created_at"] = None
    with pytest.raises(SpecError, match="deployment_created_at"):
        parse_spec([document])


def test_federated_options_take_the_deployment_values_and_fedprox_a_default_mu() -> None:
    document = spec_document("pytorch", "c", 1, mode="federated")
    document["training"]["federated"] = {
        "rounds": 3,
        "local_epochs": 2,
        "min_clients": 2,
        "strategy": "fedprox",
        "data_restrictions": {"features": 8},
    }
    options = parse_spec([document]).federated
    assert (options.rounds, options.local_epochs, options.min_clients) == (3, 2, 2)
    assert options.mu == 0.01 and options.data_restrictions == {"features": 8}
