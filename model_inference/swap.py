"""The model a replica serves, and swapping it for another between two batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from numpy.typing import NDArray

from kafkaml.frameworks import load_artifact
from model_inference.spec import InferenceSpec, ModelArtifact, SpecSource

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """A loaded model: one call per micro-batch (the frameworks' `predict_batch`)."""

    def predict_batch(self, x: NDArray[Any]) -> NDArray[Any] | tuple[NDArray[Any], ...]: ...


ModelLoader = Callable[[InferenceSpec, ModelArtifact], Predictor]
"""Builds a predictor from a spec (framework, model code) and an artifact; raises on bad models."""


@dataclass(frozen=True)
class ServingModel:
    """A predictor and the version written in the header of every output it produced."""

    version: str
    predictor: Predictor


def load_framework_model(spec: InferenceSpec, artifact: ModelArtifact) -> Predictor:
    """The `ModelLoader` of the service: the frameworks' loader for the spec's artifact format.

    Raises the frameworks' ArtifactError or ModelCodeError (both ValueErrors).
    """
    model: Predictor = load_artifact(
        spec.framework,
        artifact.data,
        spec.artifact_format,
        imports=spec.model_imports,
        code=spec.model_code,
    )
    return model


def limit_model_threads(framework: str, threads: int) -> None:
    """Cap the CPU threads one prediction call may use.

    PyTorch's OpenMP pool spins when the cores are shared with the broker: on the 2-core
    machine kind an 18-64-64-1 MLP took 6.4 us/sample with 2 threads and 0.27 with 1.
    TensorFlow showed no such effect and keeps its defaults.
    """
    if framework == "pytorch":
        import torch

        torch.set_num_threads(threads)


def load_serving_model(
    source: SpecSource, loader: ModelLoader
) -> tuple[InferenceSpec, ServingModel]:
    """The source's current spec and its model, loaded. Raises what the source or loader raise."""
    spec, artifact = source.model()
    return spec, ServingModel(artifact.version, loader(spec, artifact))


class ModelSwapper:
    """Polls a spec source every `interval_s` on a thread of its own ("spec-poll") and loads
    the model there when its version changes; the serving loop takes the loaded model between
    two batches (`poll`), reading memory only.

    So neither a slow or absent backend nor a model load adds latency to answers. Failures to
    reach the source are logged and retried at the next poll (a replica keeps serving through
    a backend outage). A version whose model fails to load is logged and not retried; the
    replica keeps serving the model it has.

    The thread shares nothing with the serving loop but one slot, handed over under a lock
    that no blocking call is made under: the poll (HTTP or file) and the load run unlocked.
    """

    def __init__(
        self,
        source: SpecSource,
        loader: ModelLoader,
        running: InferenceSpec,
        interval_s: float,
    ) -> None:
        self._source = source
        self._running = running
        self._loader = loader
        self._interval_s = interval_s
        self._rejected: set[str] = set()
        self._version = running.model_version  # the newest version loaded (poll thread only)
        self._loaded: ServingModel | None = None  # handed over under _lock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the polling thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spec-poll", daemon=True)
            self._thread.start()

    def poll(self, current: ServingModel) -> ServingModel | None:
        """The model loaded since the last call when it differs from `current`, else None.

        Never waits on the source.
        """
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is None or loaded.version == current.version:
            return None
        return loaded

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop polling; waits up to `timeout_s` for a poll in hand (a daemon thread, it never
        keeps the process alive)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            loaded = self._check()
            if loaded is not None:
                self._version = loaded.version
                with self._lock:
                    self._loaded = loaded

    def _check(self) -> ServingModel | None:
        try:
            version = self._source.spec().model_version
            if version == self._version or version in self._rejected:
                return None
            spec, artifact = self._source.model()
        except (OSError, ValueError, RuntimeError) as error:
            log.warning("could not check the inference spec for a new model: %s", error)
            return None
        return self._load(spec, artifact)

    def _load(self, spec: InferenceSpec, artifact: ModelArtifact) -> ServingModel | None:
        if artifact.version == self._version:
            return None
        if not spec.same_pipeline(self._running):
            log.warning("the spec changed more than the model; only the model is swapped, "
                        "restart the inference to apply the rest")  # fmt: skip
        try:
            predictor = self._loader(spec, artifact)
        except (ValueError, OSError) as error:  # the frameworks' ModelCodeError is a ValueError
            log.error("model version %s failed to load, keeping %s: %s",
                      artifact.version, self._version, error)  # fmt: skip
            self._rejected.add(artifact.version)
            return None
        log.info("model version %s loaded; it replaces %s at the next batch",
                 artifact.version, self._version)  # fmt: skip
        return ServingModel(artifact.version, predictor)
