"""Framework adapters: TensorFlow/Keras 3 and PyTorch (+ Ignite) behind one `Framework` protocol.

Importing this package imports neither TensorFlow nor PyTorch: `get_framework(name)` loads an
implementation on first use, so the backend can import the error types cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

from kafkaml.frameworks.base import (
    Batch,
    BatchSource,
    EpochCallback,
    Framework,
    History,
    Metrics,
    Model,
    ModelSummary,
)
from kafkaml.frameworks.chain import chain_order, split_metrics
from kafkaml.frameworks.errors import (
    ArtifactError,
    ChainError,
    DeviceMoveError,
    FrameworkError,
    InputShapeError,
    ModelCodeError,
    OnnxExportUnavailable,
    TrainingSettingsError,
)

FRAMEWORKS = {
    "tensorflow": ("kafkaml.frameworks.tensorflow", "TensorFlowFramework"),
    "pytorch": ("kafkaml.frameworks.pytorch", "PyTorchFramework"),
}
ARTIFACT_FORMATS = ("keras", "pytorch", "onnx")


def get_framework(name: str) -> Framework:
    """The implementation for "tensorflow" or "pytorch" (imported on first use).

    Raises FrameworkError for any other name.
    """
    if name not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {name!r}; expected one of {sorted(FRAMEWORKS)}")
    module, cls = FRAMEWORKS[name]
    return getattr(importlib.import_module(module), cls)()  # type: ignore[no-any-return]


def load_artifact(
    framework: str, artifact: bytes, artifact_format: str, *, imports: str = "", code: str = ""
) -> Any:
    """Load a trained model of any format into a model with `predict_batch` and `summary`.

    `"onnx"` is served by onnxruntime whatever the framework; `"keras"` needs framework
    "tensorflow" and `"pytorch"` (a state_dict, plus the code that builds the module) needs
    "pytorch". Raises ArtifactError for a bad artifact, ModelCodeError for bad code.
    """
    if artifact_format == "onnx":
        from kafkaml.frameworks.onnx import OnnxModel

        return OnnxModel(artifact)
    impl = get_framework(framework)
    if artifact_format != impl.artifact_format:
        raise ArtifactError(
            f"a {framework} model cannot load a {artifact_format!r} artifact; "
            f"expected one of {impl.artifact_format!r} or 'onnx'"
        )
    return impl.load(artifact, imports=imports, code=code)


__all__ = [
    "ARTIFACT_FORMATS",
    "FRAMEWORKS",
    "ArtifactError",
    "Batch",
    "BatchSource",
    "ChainError",
    "DeviceMoveError",
    "EpochCallback",
    "Framework",
    "FrameworkError",
    "History",
    "InputShapeError",
    "Metrics",
    "Model",
    "ModelCodeError",
    "ModelSummary",
    "OnnxExportUnavailable",
    "TrainingSettingsError",
    "chain_order",
    "get_framework",
    "load_artifact",
    "split_metrics",
]
