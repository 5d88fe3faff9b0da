"""Early-exit chains described by parent links (Kafka-ML's `father`: the next tier up)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from kafkaml.frameworks.errors import ChainError

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
