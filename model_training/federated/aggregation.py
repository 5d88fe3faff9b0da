"""The federated math: sample-weighted FedAvg of client weights and FedProx's proximal term.

Weights are a model's arrays in a fixed order (the framework adapters' `get_weights`). The
server-side step is FedAvg whatever the strategy: FedProx (McMahan et al. 2017; Li et al. 2020)
changes only the clients' local objective, adding `mu / 2 * ||w - w_global||^2`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kafkaml.frameworks.base import Array

Weights = list[Array]
STRATEGIES = ("fedavg", "fedprox")


class AggregationError(ValueError):
    """Updates that cannot be averaged: none, mismatched shapes, or no samples."""


def fedavg(updates: Sequence[Sequence[Array]], samples: Sequence[int]) -> Weights:
    """The mean of the clients' weights, each weighted by its sample count.

    Computed in float64 and cast back to each array's dtype (integer buffers, such as a batch
    norm's step counter, are rounded). Raises AggregationError for no updates, a count that is
    not positive, or arrays whose number or shapes differ between clients.
    """
    if not updates or len(updates) != len(samples):
        raise AggregationError(f"{len(updates)} updates but {len(samples)} sample counts")
    if any(count <= 0 for count in samples):
        raise AggregationError(f"every sample count must be positive, got {list(samples)}")
    _check_alike(updates)
    shares = np.asarray(samples, dtype=np.float64) / float(sum(samples))
    return [
        _cast(
            sum(
                share * np.asarray(layer, np.float64)
                for share, layer in zip(shares, layers, strict=True)
            ),
            layers[0],
        )
        for layers in zip(*updates, strict=True)
    ]


def weighted_metrics(
    metrics: Sequence[Mapping[str, float]], samples: Sequence[int]
) -> dict[str, float]:
    """Each metric's sample-weighted mean over the clients that report it."""
    names = sorted({name for client in metrics for name in client})
    result: dict[str, float] = {}
    for name in names:
        pairs = [(m[name], n) for m, n in zip(metrics, samples, strict=True) if name in m]
        total = sum(n for _, n in pairs)
        result[name] = float(sum(value * n for value, n in pairs) / total) if total else 0.0
    return result


def proximal_term(weights: Sequence[Array], global_weights: Sequence[Array], mu: float) -> float:
    """FedProx's penalty `mu / 2 * sum ||w - w_global||^2` (what local training adds)."""
    return float(
        mu
        / 2
        * sum(
            np.sum((np.asarray(w, np.float64) - g) ** 2)
            for w, g in zip(weights, global_weights, strict=True)
        )
    )


def _check_alike(updates: Sequence[Sequence[Array]]) -> None:
    shapes = [tuple(np.shape(layer)) for layer in updates[0]]
    for index, update in enumerate(updates[1:], start=1):
        other = [tuple(np.shape(layer)) for layer in update]
        if other != shapes:
            raise AggregationError(f"update {index} has shapes {other}, update 0 has {shapes}")


def _cast(mean: Array, like: Array) -> Array:
    dtype = np.asarray(like).dtype
    if np.issubdtype(dtype, np.integer):
        return np.rint(mean).astype(dtype)
    return np.asarray(mean, dtype=dtype)
