from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kafkaml.frameworks.base import Array
from model_training.federated.aggregation import (
    AggregationError,
    FedAdam,
    fedavg,
    proximal_term,
    weighted_metrics,
)

SHAPES = [(3, 2), (2,)]


def _client(seed: int) -> list[Array]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]


def test_fedavg_equals_the_sample_weighted_mean_computed_by_hand() -> None:
    clients = [_client(i) for i in range(3)]
    counts = [10, 30, 60]
    result = fedavg(clients, counts)
    for layer in range(len(SHAPES)):
        expected = (
            10 * clients[0][layer].astype(np.float64)
            + 30 * clients[1][layer]
            + 60 * clients[2][layer]
        ) / 100
        np.testing.assert_allclose(result[layer], expected, rtol=1e-6)
        assert result[layer].dtype == np.float32


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(hnp.arrays(np.float32, (2, 3), elements=finite), st.integers(1, 10_000)),
        min_size=1,
        max_size=5,
    )
)
def test_fedavg_matches_numpy_average_with_weights(clients: list[tuple[Array, int]]) -> None:
    arrays = [[array] for array, _ in clients]
    counts = [count for _, count in clients]
    expected = np.average(
        np.stack([a for a, _ in clients]).astype(np.float64), axis=0, weights=counts
    )
    np.testing.assert_allclose(fedavg(arrays, counts)[0], expected, rtol=1e-5, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, (4,), elements=finite), st.integers(1, 5), st.integers(1, 1000))
def test_fedavg_of_identical_clients_is_that_client(array: Array, clients: int, count: int) -> None:
    np.testing.assert_allclose(fedavg([[array]] * clients, [count] * clients)[0], array, rtol=1e-6)


def test_integer_buffers_stay_integers() -> None:
    result = fedavg([[np.array(3, np.int64)], [np.array(4, np.int64)]], [1, 3])
    assert result[0].dtype == np.int64 and int(result[0]) == 4


@pytest.mark.parametrize(
    ("updates", "counts"),
    [([], []), ([_client(0)], [0]), ([_client(0), _client(1)[:1]], [1, 1]), ([_client(0)], [1, 2])],
)
def test_unaveragable_updates_are_refused(updates: list[list[Array]], counts: list[int]) -> None:
    with pytest.raises(AggregationError):
        fedavg(updates, counts)


def test_weighted_metrics_weigh_by_samples() -> None:
    assert weighted_metrics([{"loss": 1.0}, {"loss": 4.0}], [3, 1]) == {"loss": 1.75}


def test_proximal_term_is_half_mu_times_the_squared_distance() -> None:
    weights = [np.array([1.0, 2.0]), np.array([[3.0]])]
    center = [np.array([0.0, 0.0]), np.array([[1.0]])]
    assert proximal_term(weights, center, 0.5) == pytest.approx(0.25 * (1 + 4 + 4))
    assert proximal_term(weights, weights, 0.5) == 0.0


def _adam_by_hand(start: float, averages: list[float], lr: float) -> list[float]:
    """Reddi et al.'s server Adam on one scalar, in plain floats (b1 .9, b2 .99, tau 1e-3)."""
    x, m, v, path = start, 0.0, 0.0, []
    for average in averages:
        d = average - x
        m = 0.9 * m + 0.1 * d
        v = 0.99 * v + 0.01 * d * d
        x = x + lr * m / (v**0.5 + 1e-3)
        path.append(x)
    return path


def test_fedadam_takes_the_papers_server_adam_step_computed_by_hand() -> None:
    server = FedAdam(learning_rate=0.05)
    current: list[Array] = [np.array([1.0, -2.0], np.float32), np.array(7, np.int64)]
    averages = [[0.5, -1.0], [0.2, 0.0], [0.4, 3.0]]
    expected = [_adam_by_hand(start, [a[i] for a in averages], 0.05)
                for i, start in enumerate([1.0, -2.0])]  # fmt: skip
    for step, average in enumerate(averages):
        current = server.step(current, [np.array(average, np.float32), np.array(9, np.int64)])
        np.testing.assert_allclose(current[0], [expected[0][step], expected[1][step]], rtol=1e-5)
        assert current[0].dtype == np.float32
        assert int(current[1]) == 9, "integer buffers take the average"


def test_fedadam_moves_toward_the_average_by_about_the_learning_rate_at_first() -> None:
    # m / sqrt(v) = 0.1 d / (0.1 |d|) = sign(d) on the first step (tau aside)
    moved = FedAdam(learning_rate=0.01).step([np.zeros(3)], [np.array([5.0, -5.0, 0.0])])[0]
    np.testing.assert_allclose(moved, [0.01, -0.01, 0.0], atol=1e-4)
