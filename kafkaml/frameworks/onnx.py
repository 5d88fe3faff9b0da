"""Serving an exported ONNX model with onnxruntime (no TensorFlow or PyTorch needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from kafkaml.frameworks.base import Array, ModelSummary, Prediction, Shape, check_input
from kafkaml.frameworks.errors import ArtifactError

# onnxruntime names element types as "tensor(float)"; numpy names the same types differently.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class OnnxModel:
    """An ONNX model with one input, served by onnxruntime on the CPU."""

    framework = "onnx"

    def __init__(self, artifact: bytes) -> None:
        """Raises ArtifactError when the bytes are not an ONNX model with one input."""
        try:
            self.session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors are pybind types without a common base
            raise ArtifactError(f"not a loadable ONNX model: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ArtifactError(f"an ONNX model must have one input, this one has {len(inputs)}")
        self._input = inputs[0]
        self._dtype = _DTYPES.get(self._input.type, "float32")

    def predict_batch(self, x: Array) -> Prediction:
        """Predict the batch in one session run; several outputs come back as a tuple."""
        check_input(x, _dims(self._input.shape))
        outputs = self.session.run(None, {self._input.name: np.asarray(x, dtype=self._dtype)})
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def summary(self) -> ModelSummary:
        """Shapes from the graph's signature; `params` is None (onnxruntime does not expose it)."""
        outputs = [_dims(o.shape) for o in self.session.get_outputs()]
        return ModelSummary(
            input_shape=_dims(self._input.shape),
            output_shape=outputs[0] if len(outputs) == 1 else outputs,
            params=None,
            layers=[],
        )


def _dims(shape: list[Any]) -> Shape:
    # Symbolic dimensions ("batch") and unknown ones are None, as in Keras shapes.
    return [d if isinstance(d, int) else None for d in shape]


def export(
    framework: str, artifact: bytes, artifact_format: str, *, imports: str = "", code: str = ""
) -> bytes:
    """The trained model converted to ONNX (batch dimension dynamic), checked by loading it.

    Runs the user's code (a PyTorch module is rebuilt from it): call it only where user code
    may run, never in the backend. An ONNX artifact is returned as it is. Raises ArtifactError,
    ModelCodeError, or OnnxExportUnavailable where the converter cannot be imported.
    """
    if artifact_format == "onnx":
        return artifact
    from kafkaml.frameworks import load_artifact

    model = load_artifact(framework, artifact, artifact_format, imports=imports, code=code)
    converted: bytes = model.export_onnx()
    OnnxModel(converted)
    return converted
