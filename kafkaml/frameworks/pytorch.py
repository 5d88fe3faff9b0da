"""PyTorch + Ignite behind the `Framework` protocol, with Kafka-ML's user code conventions.

User code binds `model`, an `nn.Module` instance that also provides `loss_fn()` (a loss),
`optimizer()` (an optimizer over its parameters) and `metrics()` (a dict of Ignite metrics that
includes `"loss"`). The input shape (without the batch dimension) comes from `model.input_shape`
or a top-level `input_shape` in the code, else from a first `nn.Linear` layer.
An artifact is the module's `state_dict` (loaded with `weights_only=True`, never unpickled code)
plus the user code that builds the module.

A model lives on one device: the GPU when torch sees one, else the CPU, unless `build` or `load`
is given a `device`. Batches are moved there for training, evaluation and prediction;
predictions and saved weights come back on the CPU, so artifacts load on CPU-only machines.
Tensors that the user code makes itself (a loss's class weights) must be made on the device of
the module's parameters.
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
    DeviceMoveError,
    ModelCodeError,
    TrainingSettingsError,
)
from kafkaml.frameworks.usercode import error_from, run_user_code

_FIT_KEYS = {"epochs", "max_epochs", "epoch_length"}
_EVAL_KEYS = {"epoch_length"}

DeviceLike = torch.device | str


def default_device() -> torch.device:
    """The device a model goes to unless told otherwise: "cuda" when torch sees a GPU, else
    "cpu"."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchModel:
    """An `nn.Module` with its input shape and device; predicts under `torch.inference_mode`.

    The module is moved to `device` (default: `default_device()`) when the model is made.
    """

    framework = "pytorch"

    def __init__(
        self,
        module: torch.nn.Module,
        input_shape: Sequence[int],
        *,
        device: DeviceLike | None = None,
    ) -> None:
        self.module = module
        self.input_shape = tuple(input_shape)
        self.device = _resolve(device)
        self.module.to(self.device)
        self._input_dtype: str | None = None
        self._optimizer: Any = None
        self.proximal: tuple[float, list[torch.Tensor]] | None = None

    def move_to(self, device: DeviceLike) -> None:
        """Move the module to `device`; moving to the device it is on does nothing.

        Raises DeviceMoveError once the optimizer exists (after the first `fit`): its state
        would stay on the old device. Move a model before training it.
        """
        target = _resolve(device)
        if target == self.device:
            return
        if self._optimizer is not None:
            raise DeviceMoveError(
                f"cannot move the model from {self.device} to {target}: its optimizer already "
                "exists; move it before the first fit"
            )
        self.module.to(target)
        self.device = target

    def predict_batch(self, x: Array) -> Prediction:
        """Predict the whole batch in one forward pass on the model's device, in eval mode,
        without autograd; the outputs are numpy arrays (on the CPU)."""
        check_input(x, (None, *self.input_shape))
        was_training = self.module.training
        if was_training:
            self.module.eval()
        try:
            with torch.inference_mode():
                out = self.module(self._tensor(x))
        finally:
            if was_training:
                self.module.train()
        if isinstance(out, list | tuple):
            return tuple(o.cpu().numpy() for o in out)
        return out.cpu().numpy()  # type: ignore[no-any-return]

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
        """The module's `state_dict` as `torch.save` bytes, its tensors on the CPU whatever the
        model's device, so they load without a GPU (the code is stored beside it)."""
        state = self.module.state_dict()
        for name, value in state.items():
            # Replaced in place, not copied into a new dict: the dict's `_metadata` (layer
            # versions) must reach `load_state_dict` too.
            if isinstance(value, torch.Tensor):
                state[name] = value.cpu()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def export_onnx(self) -> bytes:
        """ONNX bytes from torch's TorchScript exporter, batch dimension dynamic.

        Traced on the model's device (the weights become the graph's initializers either way).
        """
        zeros = np.zeros((2, *self.input_shape), dtype=self._dtype())
        outputs = self.predict_batch(zeros)
        example = self._tensor(zeros)
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

    def get_weights(self) -> list[Array]:
        """The `state_dict`'s tensors (parameters and buffers) as numpy arrays, in its order."""
        return [value.detach().cpu().numpy().copy() for value in self.module.state_dict().values()]

    def set_weights(self, weights: Sequence[Array]) -> None:
        """Load arrays in `get_weights` order (each cast to its tensor's dtype); the optimizer is
        made afresh at the next fit, since its state belonged to the old weights.

        Raises ValueError for a wrong number of arrays, RuntimeError for a wrong shape.
        """
        state = self.module.state_dict()
        if len(weights) != len(state):
            raise ValueError(f"{len(weights)} arrays for a model of {len(state)} tensors")
        for (name, value), array in zip(list(state.items()), weights, strict=True):
            state[name] = torch.as_tensor(np.asarray(array)).to(value.dtype)
        self.module.load_state_dict(state)
        self._optimizer = None

    def set_proximal(self, mu: float) -> None:
        """FedProx: until called again, `fit` adds `mu / 2 * ||w - w_now||^2` to the loss,
        anchored at the parameters as they are now; `mu` 0 removes the term."""
        self.proximal = (
            (mu, [p.detach().clone() for p in self.module.parameters()]) if mu > 0 else None
        )

    def optimizer(self) -> Any:
        """The module's optimizer, made once, over the parameters on the model's device:
        successive `fit` calls (incremental windows, pseudo-label rounds) continue with the same
        optimizer state."""
        if self._optimizer is None:
            self._optimizer = _call(self.module.optimizer, "optimizer")
        return self._optimizer

    def _tensor(self, x: Array) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x, dtype=self._dtype())).to(self.device)

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

    def build(
        self,
        imports: str,
        code: str,
        *,
        require_training: bool = True,
        device: DeviceLike | None = None,
    ) -> TorchModel:
        """Run the code, check `model` and its Kafka-ML methods, find its input shape, and move
        it to `device` (default: `default_device()`).

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
        model = TorchModel(module, _input_shape(module, namespace), device=device)
        try:
            model.summary()
        except Exception as exc:  # the user's forward() can raise anything
            raise error_from(
                exc, context="running model.forward on zeros of the input shape"
            ) from exc
        return model

    def load(
        self,
        artifact: bytes,
        *,
        imports: str = "",
        code: str = "",
        device: DeviceLike | None = None,
    ) -> TorchModel:
        """Build the module from the code on `device` (default: `default_device()`), then load
        the `state_dict` bytes into it, whichever device they were saved from.

        Raises ModelCodeError for bad code, ArtifactError for weights that do not fit it.
        """
        if not code.strip():
            raise ArtifactError("PyTorch weights need the code that builds the module")
        model = self.build(imports, code, require_training=False, device=device)
        try:
            # Read onto the CPU, which every machine has; load_state_dict copies to the device.
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
        """Train with an Ignite trainer on the model's device; after each epoch, evaluate
        `model.metrics()` on the training batches and on the validation batches. Calling it
        again continues training (same optimizer state), as incremental training and
        pseudo-label rounds need.

        `fit_kwargs`: `epochs` (or Kafka-ML's `max_epochs`, default 1) and `epoch_length`.
        Raises TrainingSettingsError for other keys or bad values.
        """
        epochs, epoch_length = _fit_settings(fit_kwargs)
        trainer = create_supervised_trainer(
            model.module,
            model.optimizer(),
            _with_proximal(_call(model.module.loss_fn, "loss_fn"), model),
            device=model.device,
            non_blocking=True,
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
        `exit_<i>_<name>` (split them with `split_metrics`). The tiers are shared, not copied,
        and the chain is on their device. Raises ChainError for fewer than two tiers or tiers on
        different devices.
        """
        if len(models) < 2:
            raise ChainError("an early-exit chain needs at least two models")
        devices = {m.device for m in models}
        if len(devices) > 1:
            raise ChainError(
                f"the tiers of a chain must be on one device, got {sorted(map(str, devices))}"
            )
        return TorchModel(
            _EarlyExitChain([m.module for m in models]),
            models[0].input_shape,
            device=models[0].device,
        )

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
    evaluator = create_supervised_evaluator(
        module,
        metrics=metrics,
        device=model.device,
        non_blocking=True,
        prepare_batch=_prepare(model),
    )
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


def _with_proximal(loss: Any, model: TorchModel) -> Any:
    """The loss, plus FedProx's proximal term when the model has one set."""
    if model.proximal is None:
        return loss
    mu, anchors = model.proximal
    parameters = list(model.module.parameters())

    def proximal_loss(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        distance = sum(torch.sum((p - a) ** 2) for p, a in zip(parameters, anchors, strict=True))
        return loss(y_pred, y) + mu / 2 * distance  # type: ignore[no-any-return]

    return proximal_loss


class _SumOfExitLosses(torch.nn.Module):
    def __init__(self, losses: Sequence[Any]) -> None:
        super().__init__()
        self.losses = list(losses)

    def forward(self, outputs: Sequence[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return sum(
            (loss(out, y) for loss, out in zip(self.losses, outputs, strict=True)),
            torch.zeros((), device=outputs[0].device),
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
    """Ignite's batch function: numpy `(x, y)` to tensors on the engine's device (the model's)."""
    dtype = model._dtype()

    def prepare(batch: Any, device: Any = None, non_blocking: bool = False) -> tuple[Any, Any]:
        x, y = batch
        y = np.asarray(y)
        y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(dtype)
        target = model.device if device is None else device
        return (
            torch.from_numpy(np.asarray(x, dtype=dtype)).to(target, non_blocking=non_blocking),
            torch.from_numpy(y).to(target, non_blocking=non_blocking),
        )

    return prepare


def _resolve(device: DeviceLike | None) -> torch.device:
    # A bare "cuda" gets the current GPU's index, so it equals the device parameters report.
    target = default_device() if device is None else torch.device(device)
    if target.type == "cuda" and target.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return target


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
