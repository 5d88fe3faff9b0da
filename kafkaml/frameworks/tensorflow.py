"""TensorFlow / Keras 3 behind the `Framework` protocol.

User code binds `model`, a Keras model with a known input shape (start it with `keras.Input`),
compiled unless it is an early-exit sub-model (the chain is compiled as a whole).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kafkaml.frameworks.base import (
    Array,
    Batch,
    BatchSource,
    EpochCallback,
    History,
    Metrics,
    ModelSummary,
    Prediction,
    Shape,
    check_input,
)
from kafkaml.frameworks.chain import split_metrics
from kafkaml.frameworks.errors import (
    ArtifactError,
    ChainError,
    ModelCodeError,
    OnnxExportUnavailable,
    TrainingSettingsError,
)
from kafkaml.frameworks.usercode import run_user_code

# Arguments the training job owns: data, batching, splitting and callbacks come from Kafka.
_RESERVED_FIT = {"x", "y", "batch_size", "validation_data", "validation_split", "callbacks"}
_RESERVED_EVAL = {"x", "y", "batch_size", "callbacks", "return_dict"}


class KerasModel:
    """A Keras model with one-call batch prediction through a traced `tf.function`."""

    framework = "tensorflow"

    def __init__(self, model: keras.Model, *, custom_objects: Mapping[str, Any] | None = None):
        self.model = model
        self.custom_objects = dict(custom_objects or {})
        self._predict: Any = None

    def predict_batch(self, x: Array) -> Prediction:
        """Predict the whole batch in one traced call (never `model.predict()` per sample)."""
        check_input(x, self.model.input_shape)
        if self._predict is None:
            self._predict = self._trace()
        out = self._predict(np.asarray(x, dtype=self._input_dtype()))
        if isinstance(out, list | tuple):
            return tuple(o.numpy() for o in out)
        return out.numpy()  # type: ignore[no-any-return]

    def summary(self) -> ModelSummary:
        """Shapes (batch dimension None), parameter count and layers of the Keras model."""
        layers = [
            {"name": layer.name, "type": type(layer).__name__, "params": layer.count_params()}
            for layer in self.model.layers
        ]
        return ModelSummary(
            input_shape=_shape(self.model.input_shape),
            output_shape=_shapes(self.model.output_shape),
            params=int(self.model.count_params()),
            layers=layers,
        )

    def save(self) -> bytes:
        """The model as `.keras` bytes (architecture, weights, compile state)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            self.model.save(path)
            return path.read_bytes()

    def export_onnx(self) -> bytes:
        """ONNX bytes through tf2onnx; raises OnnxExportUnavailable where it cannot import."""
        try:
            import tf2onnx
        except (ImportError, AttributeError) as exc:
            raise OnnxExportUnavailable(
                f"Keras ONNX export needs tf2onnx and onnx, which cannot be imported here: {exc}"
            ) from exc
        spec = (tf.TensorSpec(self._signature_shape(), self._input_dtype(), name="input"),)
        # tf2onnx's from_keras predates Keras 3's tensor naming; converting the traced call works.
        model = self.model
        call = tf.function(lambda x: model(x, training=False))
        proto, _ = tf2onnx.convert.from_function(call, input_signature=spec, opset=17)
        return proto.SerializeToString()  # type: ignore[no-any-return]

    def get_weights(self) -> list[Array]:
        """Every weight of the model as numpy arrays, in Keras's fixed order (federated rounds)."""
        return [np.asarray(weight) for weight in self.model.get_weights()]

    def set_weights(self, weights: Sequence[Array]) -> None:
        """Load arrays in `get_weights` order. Raises ValueError for a wrong number or shape."""
        self.model.set_weights(list(weights))

    def set_proximal(self, mu: float) -> None:
        """FedProx: until called again, training adds `mu / 2 * ||w - w_now||^2` to the loss,
        anchored at the weights as they are now; `mu` 0 removes the term.

        Implemented as a regularizer on each trainable variable, so Keras's own loss includes it.
        """
        for variable in self.model.trainable_variables:
            anchor = np.asarray(variable.numpy())
            variable.regularizer = _Proximal(mu, anchor) if mu > 0 else None
        self.model.train_function = None  # retrace so the fit step sees the new regularizers

    def _trace(self) -> Any:
        spec = tf.TensorSpec(self._signature_shape(), self._input_dtype())
        model = self.model
        return tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def _signature_shape(self) -> tuple[int | None, ...]:
        return (None, *self.model.input_shape[1:])

    def _input_dtype(self) -> str:
        return str(self.model.inputs[0].dtype)


class TensorFlowFramework:
    """Keras 3 on TensorFlow: build, train, evaluate, chain, save and load."""

    name = "tensorflow"
    artifact_format = "keras"

    def build(self, imports: str, code: str, *, require_compiled: bool = True) -> KerasModel:
        """Run the code and check `model` is a Keras model with a known input shape.

        `require_compiled=False` for early-exit sub-models, which `chain` compiles.
        Raises ModelCodeError.
        """
        namespace = run_user_code(imports, code)
        model = namespace["model"]
        if not isinstance(model, keras.Model):
            raise ModelCodeError(
                f"`model` must be a Keras model, got {type(model).__name__}", line=None
            )
        _check_built(model)
        if require_compiled and not model.compiled:
            raise ModelCodeError("`model` must be compiled (call model.compile(...))", line=None)
        return KerasModel(model, custom_objects=_custom_objects(namespace))

    def load(self, artifact: bytes, *, imports: str = "", code: str = "") -> KerasModel:
        """Load `.keras` bytes; classes defined in the optional code are its custom objects.

        Raises ArtifactError when the bytes are not a loadable Keras model.
        """
        custom = _custom_objects(run_user_code(imports, code)) if code.strip() else {}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            path.write_bytes(artifact)
            try:
                model = keras.saving.load_model(path, custom_objects=custom)
            except Exception as exc:  # Keras raises many types for a bad archive
                raise ArtifactError(f"not a loadable .keras model: {exc}") from exc
        return KerasModel(model, custom_objects=custom)

    def fit(
        self,
        model: KerasModel,
        train: BatchSource,
        *,
        fit_kwargs: Mapping[str, Any],
        validation: BatchSource | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> History:
        """`model.fit` over the batches; `fit_kwargs` are Keras fit arguments (`epochs`, ...).

        Data, batch size, validation data and callbacks belong to the caller, so those keys are
        refused. For a model with several outputs (a chain), the one label trains every exit.
        Raises TrainingSettingsError for unusable arguments.
        """
        _refuse(fit_kwargs, _RESERVED_FIT, "fit_kwargs")
        history = History()
        callback = _EpochRecorder(history, on_epoch_end)
        kwargs = {"verbose": 0, **fit_kwargs}
        data = _dataset(train, model.model)
        val = _dataset(validation, model.model) if validation is not None else None
        try:
            with warnings.catch_warnings():
                # A generator's length is unknown until its first epoch ends; Keras warns then.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                model.model.fit(data, validation_data=val, callbacks=[callback], **kwargs)
        except (TypeError, ValueError) as exc:
            raise TrainingSettingsError(f"Keras fit failed: {exc}", field="fit_kwargs") from exc
        return history

    def evaluate(
        self, model: KerasModel, batches: BatchSource, *, eval_kwargs: Mapping[str, Any]
    ) -> Metrics:
        """`model.evaluate` over the batches; returns `{metric: value}`."""
        _refuse(eval_kwargs, _RESERVED_EVAL, "eval_kwargs")
        kwargs = {"verbose": 0, **eval_kwargs}
        try:
            result = model.model.evaluate(
                _dataset(batches, model.model), return_dict=True, **kwargs
            )
        except (TypeError, ValueError) as exc:
            raise TrainingSettingsError(
                f"Keras evaluate failed: {exc}", field="eval_kwargs"
            ) from exc
        return {name: float(value) for name, value in result.items()}

    def chain(
        self,
        models: Sequence[KerasModel],
        *,
        optimizer: Any = "adam",
        loss: Any = "sparse_categorical_crossentropy",
        metrics: Sequence[Any] = ("accuracy",),
    ) -> KerasModel:
        """One compiled model out of an early-exit chain given bottom (edge) first.

        Every lower sub-model must output `[to_upper, prediction]`; `to_upper` feeds the next.
        The combined model's outputs are the predictions at each exit, named `exit_<i>`, so its
        metrics are `exit_<i>_<metric>`; `split_metrics` splits them per sub-model. The
        sub-models are shared, not copied: training the chain trains them.
        Raises ChainError when the tiers do not fit together.
        """
        if len(models) < 2:
            raise ChainError("an early-exit chain needs at least two models")
        bottom = models[0].model
        inputs = keras.Input(shape=bottom.input_shape[1:], dtype=str(bottom.inputs[0].dtype))
        exits, x = [], inputs
        for index, sub in enumerate(models):
            out = sub.model(x)
            if index < len(models) - 1:
                x, out = _split_lower(out, sub.model.name)
            exits.append(keras.layers.Identity(name=f"exit_{index}")(out))
        combined = keras.Model(inputs, exits, name="early_exit_chain")
        combined.compile(
            optimizer=optimizer, loss=[loss] * len(exits), metrics=[list(metrics)] * len(exits)
        )
        return KerasModel(combined)

    @staticmethod
    def split_metrics(metrics: Metrics, tiers: int) -> list[Metrics]:
        """Split a chain's `exit_<i>_<name>` metrics into one dict per sub-model."""
        return split_metrics(metrics, tiers)


class _Proximal(keras.regularizers.Regularizer):  # type: ignore[misc]
    """FedProx's proximal term for one variable, anchored at the round's global value."""

    def __init__(self, mu: float, anchor: Array) -> None:
        self.mu = mu
        self.anchor = anchor

    def __call__(self, x: Any) -> Any:
        return self.mu / 2 * keras.ops.sum(keras.ops.square(x - self.anchor))


class _EpochRecorder(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, history: History, on_epoch_end: EpochCallback | None) -> None:
        super().__init__()
        self.history_ = history
        self.on_epoch_end_ = on_epoch_end

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        train = {k: float(v) for k, v in logs.items() if not k.startswith("val_")}
        val = {k.removeprefix("val_"): float(v) for k, v in logs.items() if k.startswith("val_")}
        self.history_.record(train, val)
        if self.on_epoch_end_ is not None:
            self.on_epoch_end_(epoch, train, val)


def _dataset(source: BatchSource, model: keras.Model) -> tf.data.Dataset:
    """A tf.data pipeline that calls `source` anew for every epoch."""
    first = _peek(source)
    x_spec = tf.TensorSpec((None, *first[0].shape[1:]), tf.as_dtype(first[0].dtype))
    y_spec = tf.TensorSpec((None, *first[1].shape[1:]), tf.as_dtype(first[1].dtype))
    outputs = len(model.outputs)

    def generate() -> Iterator[Batch]:
        yield from source()

    data = tf.data.Dataset.from_generator(generate, output_signature=(x_spec, y_spec))
    if outputs > 1:
        data = data.map(lambda x, y: (x, tuple([y] * outputs)))
    return data.prefetch(2)


def _peek(source: BatchSource) -> Batch:
    for x, y in source():
        return np.asarray(x), np.asarray(y)
    raise TrainingSettingsError("there is no data to train or evaluate on", field=None)


def _refuse(kwargs: Mapping[str, Any], reserved: set[str], field: str) -> None:
    taken = sorted(reserved.intersection(kwargs))
    if taken:
        raise TrainingSettingsError(
            f"{', '.join(taken)} cannot be set here: the training job provides them", field=field
        )


def _split_lower(out: Any, name: str) -> tuple[Any, Any]:
    if not isinstance(out, list | tuple) or len(out) != 2:
        raise ChainError(f"lower sub-model {name!r} must output [to_upper, prediction]")
    return out[0], out[1]


def _check_built(model: keras.Model) -> None:
    try:
        model.input_shape  # noqa: B018 - raises when the model has no defined input
    except (AttributeError, ValueError) as exc:
        raise ModelCodeError(
            "`model` has no input shape: start it with keras.Input(shape=...)", line=None
        ) from exc


def _custom_objects(namespace: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in namespace.items()
        if isinstance(value, type) and value.__module__ == "__kafkaml_model__"
    }


def _shape(shape: Any) -> Shape:
    return [None if d is None else int(d) for d in shape]


def _shapes(shape: Any) -> Shape | list[Shape]:
    if isinstance(shape, list | tuple) and shape and isinstance(shape[0], list | tuple):
        return [_shape(s) for s in shape]
    return _shape(shape)
