"""Formatting predictions as record values, and early-exit routing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from model_inference.predictions import (
    ModelOutputError,
    format_values,
    forward_mask,
    split_output,
    tensor_rows,
)

FLOAT_DTYPES = st.sampled_from([np.float16, np.float32, np.float64])


@given(
    hnp.arrays(
        dtype=FLOAT_DTYPES,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=6),
        elements={"allow_nan": False, "allow_infinity": False},
    )
)
def test_finite_floats_parse_back_to_the_identical_values(prediction: np.ndarray[Any, Any]) -> None:
    values = format_values(prediction)
    assert len(values) == len(prediction)
    parsed = [json.loads(value)["values"] for value in values]
    back = np.array(parsed, dtype=prediction.dtype).reshape(prediction.shape)
    assert np.array_equal(back, prediction)


@given(hnp.arrays(dtype=np.int64, shape=st.tuples(st.integers(0, 5), st.integers(1, 4))))
def test_integer_predictions_are_written_as_json_integers(prediction: np.ndarray[Any, Any]) -> None:
    parsed = [json.loads(value)["values"] for value in format_values(prediction)]
    assert parsed == prediction.tolist()


def test_nan_and_infinity_become_null_so_every_value_is_valid_json() -> None:
    values = format_values(np.array([[0.5, np.nan], [np.inf, -1.0]], dtype=np.float32))
    assert [json.loads(value) for value in values] == [
        {"values": [0.5, None]},
        {"values": [None, -1.0]},
    ]


def test_a_one_dimensional_prediction_gives_one_element_lists() -> None:
    values = format_values(np.array([0.25, 2.0], dtype=np.float32))
    assert [json.loads(value) for value in values] == [{"values": [0.25]}, {"values": [2.0]}]


def test_rows_of_several_dimensions_keep_their_nesting() -> None:
    prediction = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    parsed = [json.loads(value)["values"] for value in format_values(prediction)]
    assert parsed == prediction.tolist()


def test_rows_of_several_dimensions_write_nan_as_null() -> None:
    prediction = np.array([[[0.5, np.nan]], [[np.inf, 1.0]]], dtype=np.float32)
    assert [json.loads(value) for value in format_values(prediction)] == [
        {"values": [[0.5, None]]},
        {"values": [[None, 1.0]]},
    ]


def test_outputs_orjson_cannot_write_take_the_json_path() -> None:
    prediction = np.array([[1, 0.5], [float("nan"), "a"]], dtype=object)
    assert [json.loads(value) for value in format_values(prediction)] == [
        {"values": [1, 0.5]},
        {"values": [None, "a"]},
    ]


def test_boolean_and_non_contiguous_predictions_are_written_row_by_row() -> None:
    assert format_values(np.array([[True, False]])) == [b'{"values":[true,false]}']
    columns = np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2]
    assert format_values(columns) == [b'{"values":[0,2]}', b'{"values":[3,5]}']


def test_rows_whose_highest_value_is_below_the_limit_are_forwarded() -> None:
    prediction = np.array([[0.2, 0.7], [0.9, 0.1], [0.8, 0.2]], dtype=np.float32)
    assert forward_mask(prediction, 0.8).tolist() == [True, False, False]


@given(hnp.arrays(dtype=np.float32, shape=st.tuples(st.integers(0, 5), st.integers(0, 4))))
def test_tensor_rows_are_the_float32_bytes_of_each_row(tensor: np.ndarray[Any, Any]) -> None:
    rows = tensor_rows(tensor)
    assert rows == [row.tobytes() for row in tensor]


def test_an_early_exit_tier_needs_a_model_with_two_outputs() -> None:
    with pytest.raises(ModelOutputError, match="early-exit"):
        split_output(np.zeros((3, 2)), 3, early_exit=True)


def test_an_output_of_another_length_than_the_batch_is_refused() -> None:
    with pytest.raises(ModelOutputError, match="batch of 4"):
        split_output(np.zeros((3, 2)), 4, early_exit=False)


def test_a_pair_served_without_upper_topic_answers_with_the_exit_prediction() -> None:
    to_upper, prediction = np.zeros((2, 8)), np.ones((2, 3))
    assert split_output((to_upper, prediction), 2, early_exit=False) == (None, prediction)


def test_a_batch_with_no_row_to_forward_routes_nothing_upwards() -> None:
    assert tensor_rows(np.zeros((0, 8), dtype=np.float32)) == []
    assert forward_mask(np.zeros((0, 3), dtype=np.float32), 0.5).tolist() == []
