"""The framework-neutral contract: one `Framework` protocol and the model it produces.

Data reaches training as *batch sources*: a callable that returns a fresh iterator of `(X, y)`
numpy batches each time it is called (once per epoch, plus once to peek at dtypes), so the same
hooks serve classic training (the whole split), incremental training (one window per call of
`fit`), early-exit chains and pseudo-label rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]
Batch = tuple[Array, Array]
BatchSource = Callable[[], Iterable[Batch]]
Metrics = dict[str, float]
EpochCallback = Callable[[int, Metrics, Metrics], None]
"""Called after every epoch with (epoch starting at 0, train metrics, validation metrics)."""

Shape = list[int | None]
Prediction = Array | tuple[Array, ...]


@dataclass(frozen=True)
class ModelSummary:
    """What validation reports about a model.

    Shapes include the batch dimension as None. A model with several outputs (an early-exit
    lower tier: `[to_upper, prediction]`) has a list of shapes as `output_shape`. `params` is
    None only for ONNX models, whose parameter count onnxruntime does not expose.
    """

    input_shape: Shape
    output_shape: Shape | list[Shape]
    params: int | None
    layers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as the JSON object the executor returns."""
        return asdict(self)


@dataclass
class History:
    """Metrics per epoch from one `fit` call: `{"loss": [e0, e1, ...]}` for train and validation."""

    train: dict[str, list[float]] = field(default_factory=dict)
    validation: dict[str, list[float]] = field(default_factory=dict)

    def record(self, train: Metrics, validation: Metrics) -> None:
        """Append one epoch's metrics."""
        for name, value in train.items():
            self.train.setdefault(name, []).append(value)
        for name, value in validation.items():
            self.validation.setdefault(name, []).append(value)


class Model(Protocol):
    """A loaded model of any framework, ready to predict, save and export."""

    framework: str

    def predict_batch(self, x: Array) -> Prediction:
        """Predict a whole micro-batch in one call; X has a leading batch dimension.

        Returns one array, or `(to_upper, prediction)` for an early-exit lower tier.
        Raises InputShapeError when X does not match the model's input shape.
        """
        ...

    def summary(self) -> ModelSummary:
        """Input and output shapes, parameter count and layers."""
        ...


class Framework(Protocol):
    """One ML framework behind the same calls (TensorFlow/Keras 3, PyTorch + Ignite).

    Every method raises ModelCodeError when user code fails (with its line), and
    TrainingSettingsError when fit/evaluate arguments are unusable.
    """

    name: str
    artifact_format: str

    def build(self, imports: str, code: str) -> Any:
        """Run user code and return the framework's model wrapper (binds `model`)."""
        ...

    def load(self, artifact: bytes, *, imports: str = "", code: str = "") -> Any:
        """Load a saved artifact of `artifact_format` (code is needed for PyTorch weights)."""
        ...

    def fit(
        self,
        model: Any,
        train: BatchSource,
        *,
        fit_kwargs: Mapping[str, Any],
        validation: BatchSource | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> History:
        """Train on the batches for the epochs named in fit_kwargs; metrics per epoch."""
        ...

    def evaluate(
        self, model: Any, batches: BatchSource, *, eval_kwargs: Mapping[str, Any]
    ) -> Metrics:
        """Metrics of the model on the batches."""
        ...

    def chain(self, models: Sequence[Any], **compile_options: Any) -> Any:
        """One trainable model out of an early-exit chain (bottom first), one output per exit;
        its metrics are named `exit_<i>_<metric>`."""
        ...

    def split_metrics(self, metrics: Metrics, tiers: int) -> list[Metrics]:
        """A chain's metrics split into one dict per tier, bottom first."""
        ...


def check_input(x: Array, expected: Sequence[int | None]) -> None:
    """Raise InputShapeError unless X is a batch of samples of the `expected` shape."""
    from kafkaml.frameworks.errors import InputShapeError

    wanted = tuple(expected[1:])
    got = tuple(np.shape(x))[1:]
    if np.ndim(x) != len(expected) or any(
        w is not None and w != g for w, g in zip(wanted, got, strict=False)
    ):
        raise InputShapeError(
            f"expected a batch of samples of shape {list(wanted)}, got an array of shape "
            f"{list(np.shape(x))}"
        )
