"""Records whose sample shape differs from the batch's, or from the model's, in every format:
dead letters with the reason, while the rest of the batch is answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest

from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import InputFormat, infer_side
from model_inference.service import InferenceService
from model_inference.tests.conftest import (
    FEATURES,
    Stream,
    TinyModel,
    produce_values,
    run_until,
    samples,
    start_service,
    values_of,
)
from model_inference.tests.reader import read_committed
from model_inference.transactions import ERROR_HEADER

ODD = {0, 5, 33}  # record 0 is odd too: the batch's shape is not simply the first record's


def _records(input_format: str, count: int) -> tuple[dict[str, Any], list[bytes]]:
    """input_config and values: [18]-samples, except [1, 18]-samples at the ODD numbers."""
    x = samples(count)
    if input_format == "RAW":
        good = infer_side(InputFormat.RAW, x[0], "data")
        values = good.encode(x, "data")
        for number in ODD:
            values[number] = x[number, :17].tobytes()  # 17 floats: does not fit data_reshape
        return good.config("data"), values
    fmt = InputFormat(input_format)
    good = infer_side(fmt, x[0], "data")
    odd = infer_side(fmt, x[:1], "data")
    values = good.encode(x, "data")
    for number in ODD:
        values[number] = odd.encode(x[number : number + 1][None], "data")[0]
    config = {} if fmt is not InputFormat.AVRO else good.config("data")
    return config, values


@pytest.mark.parametrize("input_format", ["JSON", "TELEGRAF_STR_JSON", "RAW", "AVRO"])
def test_records_of_another_shape_are_dead_letters_and_the_rest_is_answered(
    input_format: str,
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    config, values = _records(input_format, 60)  # {}: the JSON formats need no configuration
    source, target, spec = new_stream(torch_model, input_format=input_format, input_config=config)
    produce_values(kafka_settings, source, values)
    service = start_service(spec, kafka_settings, max_batch=100, max_wait_ms=500)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= len(values))
    service.close()

    outputs = read_committed(kafka_settings, target)
    assert sorted(int(cast(bytes, r.key())) for r in outputs) == sorted(
        set(range(len(values))) - ODD
    )
    dead = read_committed(kafka_settings, f"{source}.dlq")
    assert sorted(int(cast(bytes, r.key())) for r in dead) == sorted(ODD)
    assert all(dict(cast("list[tuple[str, bytes]]", r.headers()))[ERROR_HEADER] for r in dead)


def test_a_batch_all_of_a_shape_the_model_cannot_take_is_dead_lettered_not_fatal(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, input_format="JSON", input_config={})
    rows = [str([row.tolist()]).encode() for row in samples(10)]  # [[18]]-samples
    produce_values(kafka_settings, source, rows)
    service = start_service(spec, kafka_settings)
    closing.append(service)
    run_until([service], lambda: service.committed_records >= 10)
    later = [str(row.tolist()).encode() for row in samples(5, seed=2)]
    produce_values(kafka_settings, source, later, first_key=10)
    run_until([service], lambda: service.committed_records >= 15)
    service.close()

    dead = read_committed(kafka_settings, f"{source}.dlq")
    assert sorted(int(cast(bytes, r.key())) for r in dead) == list(range(10))
    reason = dict(cast("list[tuple[str, bytes]]", dead[0].headers()))[ERROR_HEADER].decode()
    assert f"[{FEATURES}]" in reason and "[10, 1, 18]" in reason
    outputs = read_committed(kafka_settings, target)
    assert sorted(int(cast(bytes, r.key())) for r in outputs) == list(range(10, 15))
    assert np.isfinite([value for r in outputs for value in values_of(r)]).all()
