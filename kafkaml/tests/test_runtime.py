from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kafkaml.runtime import refreeze, tune_collector_for_streaming


class _Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """A two-node cycle that only the cyclic collector can free; a weak reference to one node."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector settings, put back afterwards."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_tuning_freezes_what_start_up_left_and_raises_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    kept = _Node()
    tune_collector_for_streaming()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (100_000, middle, old)
    assert not any(obj is kept for obj in gc.get_objects())  # frozen: out of every generation


@pytest.mark.usefixtures("collector")
def test_a_frozen_cycle_stays_until_refreeze_frees_it() -> None:
    node = _cycle()
    tune_collector_for_streaming()  # the cycle is garbage already, and collect() frees it
    assert node() is None
    node = _cycle()
    gc.freeze()  # like a model loaded at start-up and frozen, then swapped out
    gc.collect()
    assert node() is not None  # a full collection does not look at frozen objects
    refreeze()
    assert node() is None
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector")
def test_refreeze_leaves_an_untuned_process_alone() -> None:
    assert gc.get_freeze_count() == 0
    refreeze()
    assert gc.get_freeze_count() == 0
