"""TELEGRAF_STR_JSON: Telegraf JSON metrics whose string field `value` holds the sample."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaml.protocol import DecodeError, InputFormat, decode_batch, infer_side
from kafkaml.protocol.tests.test_formats import JSON_DTYPES, batches


def _metric(text: str, **extra: Any) -> bytes:
    """A metric as Telegraf's JSON serializer writes one."""
    return json.dumps({"fields": {"value": text, **extra}, "name": "mqtt_consumer",
                       "tags": {"host": "edge-1", "topic": "sensors/1"},
                       "timestamp": 1764748800}).encode()  # fmt: skip


@given(batches(JSON_DTYPES), st.none() | st.text(min_size=1, max_size=8))
def test_telegraf_round_trips_finite_arrays_with_their_dtype_and_shape(
    batch: tuple[Any, Any], field: str | None
) -> None:
    x, y = (np.nan_to_num(a, posinf=1.0, neginf=-1.0) if a.dtype.kind == "f" else a
            for a in batch)  # fmt: skip
    data = infer_side(InputFormat.TELEGRAF_STR_JSON, x[0], "data", data_field=field)
    label = infer_side(InputFormat.TELEGRAF_STR_JSON, y[0], "label")
    values, keys = data.encode(x, "data"), label.encode(y, "label")
    config = {**data.config("data"), **label.config("label")}
    x_back, y_back = decode_batch("TELEGRAF_STR_JSON", config, values, keys)
    assert x_back.dtype == x.dtype and x_back.shape == x.shape
    np.testing.assert_array_equal(x_back, x)
    assert y_back is not None
    np.testing.assert_array_equal(y_back, y)


def test_telegraf_metrics_decode_with_the_json_formats_config() -> None:
    values = [_metric("[1.5, 2, 3, 4]", other=1), _metric("[5, 6, 7, 8]")]
    x, y = decode_batch("TELEGRAF_STR_JSON", {"data_type": "float32", "data_reshape": "2 2"},
                        values, [b"0", b"1"])  # fmt: skip
    assert x.dtype == np.float32 and x.shape == (2, 2, 2)
    assert x[0, 0, 0] == 1.5 and y is not None and y.tolist() == [0, 1]
    objects = [_metric('{"values": [1, 2], "unit": "C"}')]
    x, _ = decode_batch("telegraf_str_json", {"data_field": "values"}, objects)
    assert x.tolist() == [[1, 2]]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (b"[1, 2]", "not a Telegraf JSON metric"),
        (b'{"fields": {"value": 3}}', "string field 'value'"),
        (b"{nope", "not JSON"),
        (_metric("[1, 2"), "not JSON"),
    ],
)
def test_a_record_that_is_no_telegraf_string_metric_is_named(value: bytes, named: str) -> None:
    with pytest.raises(DecodeError, match=named) as raised:
        decode_batch("TELEGRAF_STR_JSON", {}, [_metric("[0, 1]"), value])
    assert raised.value.index == 1
