"""The inference loop on the real broker with real Keras and PyTorch models."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from kafkaml.kafka import KafkaSettings
from kafkaml.testing import wait_until
from model_inference.service import InferenceError, InferenceService
from model_inference.tests.conftest import (
    SpecFile,
    Stream,
    TinyModel,
    produce_samples,
    produce_values,
    run_until,
    samples,
    spec_file,
    start_service,
    unique_inference_id,
    values_of,
    version_of,
)
from model_inference.tests.reader import read_committed
from model_inference.transactions import ERROR_HEADER, SOURCE_HEADER


@pytest.mark.parametrize("framework_fixture", ["torch_model", "keras_model"])
def test_n_inputs_give_exactly_n_outputs_with_the_keys_and_values_of_the_model(
    framework_fixture: str,
    request: pytest.FixtureRequest,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    model: TinyModel = request.getfixturevalue(framework_fixture)
    source, target, spec = new_stream(model, partitions=3)
    x = samples(600)
    produce_samples(kafka_settings, source, x, headers=[("trace", b"abc")])
    service = start_service(spec, kafka_settings, max_batch=128)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= len(x))
    service.close()  # nothing more is answered: a duplicate would be read below
    outputs = read_committed(kafka_settings, target)

    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))
    expected = model.predictor().predict_batch(x)
    for record in outputs:
        row = int(cast(bytes, record.key()))
        assert_same_prediction(values_of(record), expected[row])
        assert ("trace", b"abc") in cast("list[tuple[str, bytes]]", record.headers())
        assert version_of(record) == "1"


def test_two_replicas_split_the_partitions_and_answer_each_input_once(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, partitions=4)
    replicas = [start_service(spec, kafka_settings, replica=str(n), max_batch=100) for n in (0, 1)]
    closing.extend(replicas)
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in replicas]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(r.assignment() for r in replicas), "both replicas to own partitions")
        x = samples(2000)
        produce_samples(kafka_settings, source, x)
        wait_until(lambda: sum(r.committed_records for r in replicas) >= len(x), "the answers")
        owned = [{tp.partition for tp in r.assignment()} for r in replicas]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a replica did not stop"
    for replica in replicas:
        replica.close()

    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == {0, 1, 2, 3}
    assert all(r.committed_records > 0 for r in replicas)
    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))


def test_a_replica_joining_mid_backlog_leaves_every_input_answered_exactly_once(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, partitions=4)
    x = samples(4000)
    produce_samples(kafka_settings, source, x)
    # Full batches: the first replica answers each on its answering thread while it produces
    # the one before, so the rebalance comes with a batch being answered, which it drops.
    first = start_service(spec, kafka_settings, replica="0", max_batch=50)
    closing.append(first)
    run_until([first], lambda: first.committed_records >= 500)
    second = start_service(spec, kafka_settings, replica="1", max_batch=50)
    closing.append(second)
    replicas = [first, second]
    run_until(replicas, lambda: sum(r.committed_records for r in replicas) >= len(x), 180)
    for replica in replicas:
        replica.close()

    assert second.committed_records > 0
    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))


def test_early_exit_chain_forwards_unconfident_rows_and_answers_the_rest(
    edge_and_cloud_models: tuple[TinyModel, TinyModel],
    new_topic: Callable[..., str],
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    closing: list[InferenceService],
) -> None:
    edge, cloud = edge_and_cloud_models
    source, edge_out, upper, cloud_out = (new_topic(partitions=2) for _ in range(4))
    x = samples(400)
    hidden, confidence = edge.predictor().predict_batch(x)
    limit = float(np.median(confidence.max(axis=1)))
    forwarded = confidence.max(axis=1) < limit
    produce_samples(kafka_settings, source, x)
    (tmp_path / "edge").mkdir()
    (tmp_path / "cloud").mkdir()
    edge_spec = spec_file(tmp_path / "edge", edge, input_topic=source, output_topic=edge_out,
                          inference_id=unique_inference_id(), upper_topic=upper,
                          limit=limit)  # fmt: skip
    cloud_spec = spec_file(tmp_path / "cloud", cloud, input_topic=upper, output_topic=cloud_out,
                           inference_id=unique_inference_id() + 1,
                           input_config={"data_type": "float32", "data_reshape": "8"})  # fmt: skip
    tiers = [start_service(edge_spec, kafka_settings), start_service(cloud_spec, kafka_settings)]
    closing.extend(tiers)

    run_until(tiers, lambda: tiers[0].committed_records >= len(x)
              and tiers[1].committed_records >= forwarded.sum())  # fmt: skip
    for tier in tiers:
        tier.close()

    answered = read_committed(kafka_settings, edge_out)
    assert sorted(int(cast(bytes, r.key())) for r in answered) == list(np.flatnonzero(~forwarded))
    for record in answered:
        assert_same_prediction(values_of(record), confidence[int(cast(bytes, record.key()))])
    sent_up = read_committed(kafka_settings, upper)
    assert sorted(int(cast(bytes, r.key())) for r in sent_up) == list(np.flatnonzero(forwarded))
    for record in sent_up:
        assert record.value() == hidden[int(cast(bytes, record.key()))].astype(np.float32).tobytes()
    final = read_committed(kafka_settings, cloud_out)
    expected = cloud.predictor().predict_batch(hidden)
    assert sorted(int(cast(bytes, r.key())) for r in final) == list(np.flatnonzero(forwarded))
    for record in final:
        assert_same_prediction(values_of(record), expected[int(cast(bytes, record.key()))])


def test_malformed_records_go_to_the_dead_letter_topic_and_the_rest_are_answered(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model)
    x = samples(300)
    bad = {3, 4, 150, 299}
    values = [b"not a sample" if n in bad else row.tobytes() for n, row in enumerate(x)]
    produce_values(kafka_settings, source, values, headers=[("trace", b"t")])
    service = start_service(spec, kafka_settings, max_batch=100)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= len(x))
    service.close()

    outputs = read_committed(kafka_settings, target)
    assert sorted(int(cast(bytes, r.key())) for r in outputs) == sorted(set(range(len(x))) - bad)
    dead = read_committed(kafka_settings, f"{source}.dlq")
    assert sorted(int(cast(bytes, r.key())) for r in dead) == sorted(bad)
    for record in dead:
        headers = dict(cast("list[tuple[str, bytes]]", record.headers()))
        assert record.value() == b"not a sample"
        assert headers["trace"] == b"t"
        assert headers[ERROR_HEADER]
        assert headers[SOURCE_HEADER] == f"{source}:0:{cast(bytes, record.key()).decode()}".encode()
    assert service.metrics.dead_letters._value.get() == len(bad)


def test_hot_swap_changes_the_model_version_at_a_batch_boundary_without_gap_or_duplicate(
    torch_model: TinyModel,
    other_torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model)
    x = samples(1000)
    produce_samples(kafka_settings, source, x[:600])
    service = start_service(spec, kafka_settings, max_batch=64)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= 300)
    service.settle()  # the batch in flight was predicted by version 1 too
    before_swap = service.committed_records
    spec.write(other_torch_model, "2")
    run_until([service], lambda: service.model_version == "2")
    produce_samples(kafka_settings, source, x[600:], first_key=600)
    run_until([service], lambda: service.committed_records >= len(x))
    service.close()

    outputs = read_committed(kafka_settings, target)
    assert [int(cast(bytes, r.key())) for r in outputs] == list(range(len(x)))
    versions = [version_of(r) for r in outputs]
    # The new model loads off the serving path: version 1 answers on until it is ready.
    switch = versions.index("2")
    assert switch >= before_swap
    assert versions == ["1"] * switch + ["2"] * (len(x) - switch)
    old = torch_model.predictor().predict_batch(x)
    new = other_torch_model.predictor().predict_batch(x)
    for record, version in zip(outputs, versions, strict=True):
        expected = old if version == "1" else new
        assert_same_prediction(values_of(record), expected[int(cast(bytes, record.key()))])


def test_a_spec_source_that_hangs_holds_up_no_answer(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model)
    service = start_service(spec, kafka_settings, max_batch=100)
    closing.append(service)
    # From now on every spec poll blocks in open(): a FIFO with no writer, as a backend that
    # accepts the connection and never answers.
    fifo = spec.path.with_name("hanging.json")
    os.mkfifo(fifo)
    fifo.replace(spec.path)
    stop = threading.Event()
    serving = threading.Thread(target=service.run, args=(stop,))
    serving.start()
    try:
        x = samples(500)
        produce_samples(kafka_settings, source, x)
        wait_until(lambda: service.committed_records >= len(x), "the answers", timeout_s=60)
    finally:
        stop.set()
        _answer_the_fifo(spec)
        serving.join(30)
    assert not serving.is_alive(), "the replica did not stop"
    service.close()

    outputs = read_committed(kafka_settings, target)
    assert sorted(int(cast(bytes, r.key())) for r in outputs) == list(range(len(x)))


def _answer_the_fifo(spec: SpecFile) -> None:
    """Put a regular spec file back, and write the spec to a poll waiting on the FIFO."""
    try:
        end = os.open(spec.path, os.O_WRONLY | os.O_NONBLOCK)  # fails when no reader waits
    except OSError:
        end = None
    scratch = spec.path.with_suffix(".tmp")
    scratch.write_text(json.dumps(spec.value))
    scratch.replace(spec.path)
    if end is not None:
        with os.fdopen(end, "w") as writer:
            writer.write(json.dumps(spec.value))


def test_a_restarted_replica_fences_its_predecessor_and_nothing_is_answered_twice(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, partitions=2)
    x = samples(1000)
    produce_samples(kafka_settings, source, x)
    zombie = start_service(spec, kafka_settings, max_batch=100)
    closing.append(zombie)
    run_until([zombie], lambda: zombie.committed_records >= 200)

    successor = start_service(spec, kafka_settings, max_batch=100)  # same replica name
    closing.append(successor)
    with pytest.raises(InferenceError):
        run_until([zombie], lambda: False, timeout_s=30)
    zombie.close()  # as its process would on exiting: the group moves on without it
    run_until([successor], lambda: successor.committed_records + zombie.committed_records >= len(x))
    successor.close()

    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))


def assert_same_prediction(values: list[float], expected: np.ndarray[Any, Any]) -> None:
    """The values of one output equal the in-process prediction, up to float32 rounding.

    Keras kernels may round differently for another batch size, hence not bit equality.
    """
    np.testing.assert_allclose(np.float32(values), expected, rtol=1e-5, atol=1e-7)  # type: ignore[arg-type]  # an array of a list


def test_an_output_on_another_cluster_gets_every_answer_through_its_own_producer(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    # The same broker under another address: the service must treat it as another cluster.
    host, port = kafka_settings.bootstrap_servers.split(",")[0].rsplit(":", 1)
    other = f"{'localhost' if host == '127.0.0.1' else '127.0.0.1'}:{port}"
    source, target, spec = new_stream(torch_model, partitions=2, output_bootstrap=other)
    x = samples(500)
    produce_samples(kafka_settings, source, x)
    service = start_service(spec, kafka_settings, max_batch=100)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= len(x))
    service.close()

    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(len(x)))
    expected = torch_model.predictor().predict_batch(x)
    for record in outputs:
        assert_same_prediction(values_of(record), expected[int(cast(bytes, record.key()))])
