"""PyTorch + Ignite behind the `Framework` protocol, with Kafka-ML's user code conventions.

User code binds `model`, an `nn.Module` instance that also provides `loss_fn()` (a loss),
`optimizer()` (an optimizer over its parameters) and `metrics()` (a dict of Ignite metrics that
includes `"loss"`). The input shape (without the batch dimension) comes from `model.input_shape`
or a top-level `input_shape` in the code, else from a first `nn.Linear` layer.
An artifact is the module's `state_dict` (loaded with `weights_only=True`, never unpickled code)
plus the user code that builds the module.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events, create_supervised_evaluator, create_supervised_trainer

from kafkaml.frameworks.base import (
    Array,
    BatchSource,
    EpochCallback,
    History,
    Metrics,
    ModelSummary,
    Prediction,
    Shape,
    check_input,
)
from kafkaml.frameworks.chain import exit_prefix, split_metrics
from kafkaml.frameworks.errors import (
    ArtifactError,
    ChainError,
    ModelCodeError,
    TrainingSettingsError,
)
from kafkaml.frameworks.usercode import error_from, run_user_code

_FIT_KEYS = {"epochs", "max_epochs", "epoch_length"}
_EVAL_KEYS = {"epoch_length"}


class TorchModel:
    """An `nn.Module` with its input shape; predicts under `torch.inference_mode`."""

    framework = "pytorch"

    def __init__(self, module: torch.nn.Module, input_shape: Sequence[int]) -> None:
        self.module = module
        self.input_shape = tuple(input_shape)
        self._input_dtype: str | None = None
        self._optimizer: Any = None

    def predict_batch(self, x: Array) -> Prediction:
        """Predict the whole batch in one forward pass, in eval mode, without autograd."""
        check_input(x, (None, *self.input_shape))
        was_training = self.module.training
        if was_training:
            self.module.eval()
        try:
            with torch.inference_mode():
                out = self.module(torch.from_numpy(np.asarray(x, dtype=self._dtype())))
        finally:
            if was_training:
                self.module.train()
        if isinstance(out, list | tuple):
            return tuple(o.numpy() for o in out)
        return out.numpy()  # type: ignore[no-any-return]

    def summary(self) -> ModelSummary:
        """Shapes from a forward pass on zeros, parameter count and leaf layers."""
        out = self.predict_batch(np.zeros((2, *self.input_shape), dtype=self._dtype()))
        output: Shape | list[Shape] = (
            [_batch_shape(o) for o in out] if isinstance(out, tuple) else _batch_shape(out)
        )
        layers = [
            {"name": name, "type": type(m).__name__, "params": _count(m)}
            for name, m in self.module.named_modules()
            if name and not list(m.children())
        ]
        return ModelSummary(
            input_shape=[None, *self.input_shape],
            output_shape=output,
            params=_count(self.module),
            layers=layers,
        )

    def save(self) -> bytes:
        """The module's `state_dict` as `torch.save` bytes (the code is stored beside it)."""
        buffer = io.BytesIO()
        torch.save(self.module.state_dict(), buffer)
        return buffer.getvalue()

    def export_onnx(self) -> bytes:
        """ONNX bytes from torch's TorchScript exporter, batch dimension dynamic."""
        example = torch.zeros((2, *self.input_shape), dtype=getattr(torch, self._dtype()))
        outputs = self.predict_batch(example.numpy())
        names = (
            [f"output_{i}" for i in range(len(outputs))]
            if isinstance(outputs, tuple)
            else ["output"]
        )
        axes = {name: {0: "batch"} for name in ["input", *names]}
        buffer = io.BytesIO()
        self.module.eval()
        # The TorchScript exporter is deprecated upstream but is the one that works with the
        # pinned onnx; its deprecation warnings would flood every job's log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                self.module,
                (example,),
                buffer,  # type: ignore[arg-type]  # torch writes to file-like objects too
                dynamo=False,
                input_names=["input"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=17,
            )
        return buffer.getvalue()

    def optimizer(self) -> Any:
        """The module's optimizer, made once: successive `fit` calls (incremental windows,
        pseudo-label rounds) continue with the same optimizer state."""
        if self._optimizer is None:
            self._optimizer = _call(self.module.optimizer, "optimizer")
        return self._optimizer

    def _dtype(self) -> str:
        # The first floating parameter's dtype: inputs are cast to it (float32 usually).
        if self._input_dtype is None:
            self._input_dtype = self._find_dtype()
        return self._input_dtype

    def _find_dtype(self) -> str:
        for parameter in self.module.parameters():
            if parameter.is_floating_point():
                return str(parameter.dtype).removeprefix("torch.")
        return "float32"


class PyTorchFramework:
    """PyTorch modules trained with Ignite engines."""

    name = "pytorch"
    artifact_format = "pytorch"

    def build(self, imports: str, code: str, *, require_training: bool = True) -> TorchModel:
        """Run the code, check `model` and its Kafka-ML methods, and find its input shape.

        `require_training=False` skips `loss_fn/optimizer/metrics` (early-exit sub-models).
        Raises ModelCodeError with the line in the user's code.
        """
        namespace = run_user_code(imports, code)
        module = namespace["model"]
        if not isinstance(module, torch.nn.Module):
            raise ModelCodeError(
                f"`model` must be a torch.nn.Module instance, got {type(module).__name__}",
                line=None,
            )
        if require_training:
            _check_training_methods(module)
        model = TorchModel(module, _input_shape(module, namespace))
        try:
            model.summary()
        except Exception as exc:  # the user's forward() can raise anything
            raise error_from(
                exc, context="running model.forward on zeros of the input shape"
            ) from exc
        return model

    def load(self, artifact: bytes, *, imports: str = "", code: str = "") -> TorchModel:
        """Build the module from the code, then load the `state_dict` bytes into it.

        Raises ModelCodeError for bad code, ArtifactError for weights that do not fit it.
        """
        if not code.strip():
            raise ArtifactError("PyTorch weights need the code that builds the module")
        model = self.build(imports, code, require_training=False)
        try:
            state = torch.load(io.BytesIO(artifact), weights_only=True, map_location="cpu")
            model.module.load_state_dict(state)
        except Exception as exc:  # torch raises several types for bad bytes or keys
            raise ArtifactError(f"the weights do not load into the model: {exc}") from exc
        return model

    def fit(
        self,
        model: TorchModel,
        train: BatchSource,
        *,
        fit_kwargs: Mapping[str, Any],
        validation: BatchSource | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> History:
        """Train with an Ignite trainer; after each epoch, evaluate `model.metrics()` on the
        training batches and on the validation batches. Calling it again continues training
        (same optimizer state), as incremental training and pseudo-label rounds need.

        `fit_kwargs`: `epochs` (or Kafka-ML's `max_epochs`, default 1) and `epoch_length`.
        Raises TrainingSettingsError for other keys or bad values.
        """
        epochs, epoch_length = _fit_settings(fit_kwargs)
        trainer = create_supervised_trainer(
            model.module,
            model.optimizer(),
            _call(model.module.loss_fn, "loss_fn"),
            prepare_batch=_prepare(model),
        )
        history = History()

        @trainer.on(Events.EPOCH_COMPLETED)
        def _report(engine: Engine) -> None:
            train_metrics = self._metrics(model, train)
            val_metrics = self._metrics(model, validation) if validation is not None else {}
            history.record(train_metrics, val_metrics)
            if on_epoch_end is not None:
                on_epoch_end(engine.state.epoch - 1, train_metrics, val_metrics)

        trainer.run(_Batches(train), max_epochs=epochs, epoch_length=epoch_length)
        return history

    def evaluate(
        self, model: TorchModel, batches: BatchSource, *, eval_kwargs: Mapping[str, Any]
    ) -> Metrics:
        """`model.metrics()` computed by an Ignite evaluator over the batches."""
        unknown = sorted(set(eval_kwargs) - _EVAL_KEYS)
        if unknown:
            raise TrainingSettingsError(
                f"unknown evaluate arguments {unknown}; PyTorch accepts {sorted(_EVAL_KEYS)}",
                field="eval_kwargs",
            )
        return self._metrics(model, batches)

    def chain(self, models: Sequence[TorchModel], **_: Any) -> TorchModel:
        """One trainable module out of an early-exit chain given bottom (edge) first.

        Every lower tier's forward returns `(to_upper, prediction)`. The chain outputs the
        prediction at every exit; its loss is the sum of each tier's `loss_fn()` on the one
        label; its optimizer is the bottom tier's optimizer type and settings over all the
        tiers' parameters; its metrics are each tier's `metrics()` on its exit, named
        `exit_<i>_<name>` (split them with `split_metrics`). The tiers are shared, not copied.
        Raises ChainError for fewer than two tiers.
        """
        if len(models) < 2:
            raise ChainError("an early-exit chain needs at least two models")
        return TorchModel(_EarlyExitChain([m.module for m in models]), models[0].input_shape)

    @staticmethod
    def split_metrics(metrics: Metrics, tiers: int) -> list[Metrics]:
        """Split a chain's `exit_<i>_<name>` metrics into one dict per sub-model."""
        return split_metrics(metrics, tiers)

    def _metrics(self, model: TorchModel, batches: BatchSource) -> Metrics:
        if isinstance(model.module, _EarlyExitChain):
            return self._chain_metrics(model.module, model, batches)
        return _evaluate(model.module, model.module, model, batches)

    def _chain_metrics(
        self, chain: _EarlyExitChain, model: TorchModel, batches: BatchSource
    ) -> Metrics:
        metrics: Metrics = {}
        for index, tier in enumerate(chain.tiers):
            view = _ExitView(chain, index)
            for name, value in _evaluate(view, tier, model, batches).items():
                metrics[exit_prefix(index) + name] = value
        return metrics


def _evaluate(
    module: torch.nn.Module, owner: torch.nn.Module, model: TorchModel, batches: BatchSource
) -> Metrics:
    """`owner.metrics()` of `module`'s output over the batches."""
    metrics = _call(owner.metrics, "metrics")
    evaluator = create_supervised_evaluator(module, metrics=metrics, prepare_batch=_prepare(model))
    state = evaluator.run(_Batches(batches))
    return {name: float(value) for name, value in state.metrics.items()}


class _EarlyExitChain(torch.nn.Module):
    """Tiers run bottom first; the output is the prediction at every exit."""

    def __init__(self, tiers: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.tiers = torch.nn.ModuleList(tiers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        exits = []
        for tier in self.tiers[:-1]:
            out = tier(x)
            if not isinstance(out, list | tuple) or len(out) != 2:
                raise ChainError("a lower tier must return (to_upper, prediction)")
            x, prediction = out
            exits.append(prediction)
        exits.append(self.tiers[-1](x))
        return tuple(exits)

    def loss_fn(self) -> torch.nn.Module:
        return _SumOfExitLosses([_call(t.loss_fn, "loss_fn") for t in self.tiers])

    def optimizer(self) -> torch.optim.Optimizer:
        bottom = _call(self.tiers[0].optimizer, "optimizer")
        optimizer: torch.optim.Optimizer = type(bottom)(self.parameters(), **bottom.defaults)
        return optimizer


class _SumOfExitLosses(torch.nn.Module):
    def __init__(self, losses: Sequence[Any]) -> None:
        super().__init__()
        self.losses = list(losses)

    def forward(self, outputs: Sequence[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return sum(
            (loss(out, y) for loss, out in zip(self.losses, outputs, strict=True)),
            torch.zeros(()),
        )


class _ExitView(torch.nn.Module):
    """The chain seen through one exit, for that tier's metrics."""

    def __init__(self, chain: _EarlyExitChain, index: int) -> None:
        super().__init__()
        self.chain = chain
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prediction: torch.Tensor = self.chain(x)[self.index]
        return prediction


class _Batches:
    """Re-iterable view of a batch source: Ignite iterates it once per epoch."""

    def __init__(self, source: BatchSource) -> None:
        self.source = source

    def __iter__(self) -> Iterator[Any]:
        return iter(self.source())


def _prepare(model: TorchModel) -> Any:
    dtype = model._dtype()

    def prepare(batch: Any, device: Any = None, non_blocking: bool = False) -> tuple[Any, Any]:
        x, y = batch
        y = np.asarray(y)
        y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(dtype)
        return torch.from_numpy(np.asarray(x, dtype=dtype)), torch.from_numpy(y)

    return prepare


def _fit_settings(kwargs: Mapping[str, Any]) -> tuple[int, int | None]:
    unknown = sorted(set(kwargs) - _FIT_KEYS)
    if unknown:
        raise TrainingSettingsError(
            f"unknown fit arguments {unknown}; PyTorch accepts {sorted(_FIT_KEYS)}",
            field="fit_kwargs",
        )
    epochs = kwargs.get("epochs", kwargs.get("max_epochs", 1))
    length = kwargs.get("epoch_length")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise TrainingSettingsError("epochs must be a positive integer", field="fit_kwargs")
    if length is not None and (not isinstance(length, int) or length < 1):
        raise TrainingSettingsError("epoch_length must be a positive integer", field="fit_kwargs")
    return epochs, length


def _check_training_methods(module: torch.nn.Module) -> None:
    for method in ("loss_fn", "optimizer", "metrics"):
        if not callable(getattr(module, method, None)):
            raise ModelCodeError(f"`model` must define {method}()", line=None)
    metrics = _call(module.metrics, "metrics")
    if not isinstance(metrics, dict) or "loss" not in metrics:
        raise ModelCodeError('model.metrics() must return a dict with a "loss" metric', line=None)
    _call(module.loss_fn, "loss_fn")
    _call(module.optimizer, "optimizer")


def _call(method: Any, name: str) -> Any:
    try:
        return method()
    except Exception as exc:  # user code can raise anything
        raise error_from(exc, context=f"calling model.{name}()") from exc


def _input_shape(module: torch.nn.Module, namespace: Mapping[str, Any]) -> tuple[int, ...]:
    declared = getattr(module, "input_shape", None) or namespace.get("input_shape")
    if declared is not None:
        try:
            return tuple(int(d) for d in declared)
        except (TypeError, ValueError):
            raise ModelCodeError(
                f"input_shape must be a sequence of ints, got {declared!r}", line=None
            ) from None
    first = next((m for m in module.modules() if not list(m.children())), None)
    if isinstance(first, torch.nn.Linear):
        return (first.in_features,)
    raise ModelCodeError(
        "cannot infer the input shape: set `input_shape = (...)` (without the batch "
        "dimension) in the code or as model.input_shape",
        line=None,
    )


def _batch_shape(array: Array) -> Shape:
    return [None, *(int(d) for d in array.shape[1:])]


def _count(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))
