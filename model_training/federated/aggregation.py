"""The federated math: sample-weighted FedAvg of client weights, FedProx's proximal term, and
FedAdam's server-side step.

Weights are a model's arrays in a fixed order (the framework adapters' `get_weights`). Every
round starts from FedAvg (McMahan et al. 2017). FedProx (Li et al. 2020) changes only the
clients' local objective, adding `mu / 2 * ||w - w_global||^2`; its server step is FedAvg.
FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2) treats
`fedavg - w_global` as a pseudo-gradient and takes an Adam step with it on the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kafkaml.frameworks.base import Array

Weights = list[Array]
STRATEGIES = ("fedavg", "fedprox", "fedadam")


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


@dataclass
class FedAdam:
    """The server's Adam over rounds: `step(global, average)` is the next global weights.

    Per array, with the pseudo-gradient `d = average - global`:
    `m = b1 m + (1 - b1) d`, `v = b2 v + (1 - b2) d^2`, `global + lr m / (sqrt(v) + tau)`
    (no bias correction, as in the paper). Integer buffers take the average as it is.
    Defaults are the paper's recommended ranges (b1 0.9, b2 0.99, tau 1e-3).
    """

    learning_rate: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    _m: list[Array] = field(default_factory=list)
    _v: list[Array] = field(default_factory=list)

    def step(self, current: Sequence[Array], average: Sequence[Array]) -> Weights:
        if not self._m:
            self._m = [np.zeros(np.shape(a), np.float64) for a in current]
            self._v = [np.zeros(np.shape(a), np.float64) for a in current]
        result: Weights = []
        for i, (now, mean) in enumerate(zip(current, average, strict=True)):
            if np.issubdtype(np.asarray(mean).dtype, np.integer):
                result.append(np.asarray(mean))
                continue
            delta = np.asarray(mean, np.float64) - np.asarray(now, np.float64)
            self._m[i] = self.beta1 * self._m[i] + (1 - self.beta1) * delta
            self._v[i] = self.beta2 * self._v[i] + (1 - self.beta2) * delta**2
            moved = np.asarray(now, np.float64) + self.learning_rate * self._m[i] / (
                np.sqrt(self._v[i]) + self.tau
            )
            result.append(_cast(moved, mean))
        return result
