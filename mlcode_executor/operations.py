"""What the sandbox child does for each operation. Runs only inside the child: it imports the
framework and executes user code."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from kafkaml.frameworks import get_framework, load_artifact
from kafkaml.frameworks.base import Array, Batch, BatchSource
from kafkaml.frameworks.errors import FrameworkError, TrainingSettingsError
from mlcode_executor.checks import artifact_bytes, encode_artifact

# The dry run trains on at most this many random samples: enough to exercise the batch
# size and the arguments, small enough to stay well inside the time limit.
DRY_RUN_SAMPLES = 4096

_WARM_UP = {
    "tensorflow": (
        "import keras",
        "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "model.compile(optimizer='sgd', loss='mse')",
    ),
    "pytorch": (
        "import torch\nfrom ignite.metrics import Loss",
        "class Net(torch.nn.Linear):\n"
        "    def loss_fn(self): return torch.nn.MSELoss()\n"
        "    def optimizer(self): return torch.optim.SGD(self.parameters(), lr=0.1)\n"
        "    def metrics(self): return {'loss': Loss(self.loss_fn())}\n"
        "model = Net(2, 1)",
    ),
}


def warm_up(runtime: str) -> None:
    """Import the runtime ("tensorflow", "pytorch" or "onnx") and run a tiny model once, so its
    thread pools and allocators exist before the memory limit is measured and set."""
    if runtime == "onnx":
        import onnxruntime  # noqa: F401

        return
    model = get_framework(runtime).build(*_WARM_UP[runtime])
    model.predict_batch(np.zeros((4, 2), "float32"))


def validate_model(request: Mapping[str, Any]) -> dict[str, Any]:
    """Build the model from its code and return its summary (raises ModelCodeError)."""
    # A Keras early-exit tier is compiled as part of its chain; a PyTorch tier brings its own
    # loss_fn, optimizer and metrics to the chain, so it needs them even when distributed.
    distributed_keras = request["framework"] == "tensorflow" and request.get("distributed")
    model = _build(request, training=not distributed_keras)
    return model.summary().to_dict()  # type: ignore[no-any-return]


def validate_training(request: Mapping[str, Any]) -> dict[str, Any]:
    """Dry-run fit (one epoch) and evaluate on random samples of the model's input shape.

    First it finds labels the model can train on without the user's arguments (class indices,
    else targets of the output's shape); then a failure with the arguments is theirs.
    Raises TrainingSettingsError naming the field, or ModelCodeError for the code itself.
    """
    framework = get_framework(request["framework"])
    model = _build(request, training=True)
    x = _samples(model.summary().to_dict()["input_shape"], request["batch_size"])
    batches = _labelled(framework, model, x)
    fit_kwargs = {**request["fit_kwargs"]}
    fit_kwargs["max_epochs" if "max_epochs" in fit_kwargs else "epochs"] = 1
    _attempt("fit_kwargs", lambda: framework.fit(model, batches, fit_kwargs=fit_kwargs))
    eval_kwargs = request["eval_kwargs"]
    _attempt("eval_kwargs", lambda: framework.evaluate(model, batches, eval_kwargs=eval_kwargs))
    return {}


def validate_artifact(request: Mapping[str, Any]) -> dict[str, Any]:
    """Load an imported trained model and return its summary (raises ArtifactError)."""
    model = load_artifact(
        request["framework"],
        artifact_bytes(request),
        request["artifact_format"],
        imports=request.get("imports", ""),
        code=request.get("code", ""),
    )
    return model.summary().to_dict()  # type: ignore[no-any-return]


def export_onnx(request: Mapping[str, Any]) -> dict[str, Any]:
    """The trained model converted to ONNX, as base64 text under "onnx"."""
    from kafkaml.frameworks.onnx import export

    onnx = export(
        request["framework"],
        artifact_bytes(request),
        request["artifact_format"],
        imports=request.get("imports", ""),
        code=request.get("code", ""),
    )
    return {"onnx": encode_artifact(onnx)}


OPERATIONS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "validate_model": validate_model,
    "validate_training": validate_training,
    "validate_artifact": validate_artifact,
    "export_onnx": export_onnx,
}


def _build(request: Mapping[str, Any], *, training: bool) -> Any:
    framework = get_framework(request["framework"])
    option = "require_compiled" if request["framework"] == "tensorflow" else "require_training"
    return framework.build(request.get("imports", ""), request["code"], **{option: training})


def _samples(shape: list[int | None], batch_size: int) -> Array:
    if any(d is None for d in shape[1:]):
        raise TrainingSettingsError(
            f"cannot dry-run a model whose input shape {shape} has unknown dimensions", field=None
        )
    count = min(batch_size, DRY_RUN_SAMPLES)
    rng = np.random.default_rng(0)
    return rng.random((count, *shape[1:]), dtype=np.float32)  # type: ignore[arg-type]


def _labelled(framework: Any, model: Any, x: Array) -> BatchSource:
    """Batches of x with the first label form the model trains on without user arguments."""
    out = model.predict_batch(x)
    out = out[-1] if isinstance(out, tuple) else out
    candidates = [out.astype(np.float32)]
    if out.ndim == 2 and out.shape[1] > 1:
        candidates.insert(0, np.argmax(out, axis=1).astype(np.int64))
    failure: Exception | None = None
    for y in candidates:
        source = _source([(x, y)])
        try:
            framework.fit(model, source, fit_kwargs={"epochs": 1})
            return source
        except Exception as exc:  # any framework error means: not this label form
            failure = exc
    raise TrainingSettingsError(
        f"the model cannot train on random samples of its input shape: {failure}", field=None
    )


def _source(batches: list[Batch]) -> BatchSource:
    def source() -> Iterator[Batch]:
        return iter(batches)

    return source


def _attempt(field: str, step: Callable[[], Any]) -> None:
    try:
        step()
    except FrameworkError as exc:
        if isinstance(exc, TrainingSettingsError) and exc.field is not None:
            raise
        raise TrainingSettingsError(f"{field}: {exc}", field=field) from exc
    except Exception as exc:  # framework internals raise many types for bad arguments
        raise TrainingSettingsError(f"{field}: {type(exc).__name__}: {exc}", field=field) from exc
