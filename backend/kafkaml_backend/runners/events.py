"""How the runners tell the apps what their jobs did, without importing the apps.

The layering is apps -> runners -> kafkaml: the apps call a runner (`get_runner()`), and a
runner reports back through the listeners the apps register at start-up (their
`AppConfig.ready`): a training job that ended without reporting, an inference whose replicas
failed, the replicas' health. The import-linter contracts in pyproject.toml keep it so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class ResultListener(Protocol):
    """What the training app does with a runner's reports about training jobs."""

    def result_failed(self, result_id: int, reason: str) -> None:
        """The job of a result ended or cannot run: fail the result with `reason` if it is
        still created or running. Nothing for a result that ended otherwise or is gone."""


class InferenceListener(Protocol):
    """What the inferences app does with a runner's reports, and what it tells a runner."""

    def inference_failed(self, inference_id: int, reason: str) -> None:
        """The replicas cannot run: fail the inference if it is created or running; nothing
        otherwise, or when it is gone."""

    def inference_replicas(
        self, inference_id: int, *, ready: int, restarts: int | None, last_exit_reason: str
    ) -> None:
        """Record the replicas' health (`restarts` None and `last_exit_reason` "" leave the
        recorded values); the first ready replica makes a created inference running."""

    def active_replicas(self, inference_ids: Iterable[int]) -> dict[int, int]:
        """The replica count of each of `inference_ids` that is created or running; stopped,
        failed and deleted inferences are left out."""

    def inference_brokers(self, inference_id: int) -> list[str]:
        """The inference's own bootstrap lists (input, output, upper direction), those it
        sets; [] when it uses only the platform's brokers or is gone."""


_results: list[ResultListener] = []
_inferences: list[InferenceListener] = []


def listen_results(listener: ResultListener) -> None:
    """Make `listener` the one that hears about training jobs (the training app's ready())."""
    _results[:] = [listener]


def listen_inferences(listener: InferenceListener) -> None:
    """Make `listener` the one that hears about inference replicas (the inferences app)."""
    _inferences[:] = [listener]


def results() -> ResultListener:
    """The registered result listener; ImproperlyConfigured when no app registered one."""
    if not _results:
        raise ImproperlyConfigured("no result listener: is the training app installed?")
    return _results[0]


def inferences() -> InferenceListener:
    """The registered inference listener; ImproperlyConfigured when no app registered one."""
    if not _inferences:
        raise ImproperlyConfigured("no inference listener: is the inferences app installed?")
    return _inferences[0]
