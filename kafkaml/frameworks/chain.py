"""Early-exit chains described by parent links (Kafka-ML's `father`: the next tier up)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from kafkaml.frameworks.errors import ChainError

Metrics = dict[str, float]

K = TypeVar("K", bound=Hashable)


def chain_order(parents: Mapping[K, K | None]) -> list[K]:
    """Order a chain bottom (edge) first, top (cloud) last, from `{model: parent or None}`.

    Raises ChainError unless the links form exactly one unbranched chain of all the models.
    """
    tops = [model for model, parent in parents.items() if parent is None]
    if len(tops) != 1:
        raise ChainError(f"a chain has exactly one top model (no parent); found {len(tops)}")
    children: dict[K, K] = {}
    for model, parent in parents.items():
        if parent is None:
            continue
        if parent not in parents:
            raise ChainError(f"model {model!r} links to {parent!r}, which is not in the chain")
        if parent in children:
            raise ChainError(f"model {parent!r} has two lower tiers: a chain cannot branch")
        children[parent] = model
    order = [tops[0]]
    while order[-1] in children:
        order.append(children[order[-1]])
    if len(order) != len(parents):
        raise ChainError("the parent links contain a cycle")
    return order[::-1]


def exit_prefix(index: int) -> str:
    """The prefix of exit `index`'s metrics in a chain's metrics (`exit_0_loss`)."""
    return f"exit_{index}_"


def split_metrics(metrics: Mapping[str, float], tiers: int) -> list[Metrics]:
    """Split a chain's `exit_<i>_<name>` metrics into one dict per tier, bottom first."""
    split: list[Metrics] = [{} for _ in range(tiers)]
    for name, value in metrics.items():
        for index in range(tiers):
            if name.startswith(exit_prefix(index)):
                split[index][name.removeprefix(exit_prefix(index))] = value
    return split
