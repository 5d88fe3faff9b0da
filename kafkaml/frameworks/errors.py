"""Errors raised while building, validating, training or serving user models.

They import nothing heavy, so the backend can catch them without TensorFlow or PyTorch.
"""

from __future__ import annotations

from typing import Any


class FrameworkError(ValueError):
    """Base class of every error the framework adapters raise on bad input."""


class ModelCodeError(FrameworkError):
    """The user's model code (or an imported artifact) is not a usable model.

    `line` is a line of the user's text named by `field` (`"imports"` or `"code"`), 1-based, or
    None when the error has no place in the text (a time limit, a missing `model`).
    """

    def __init__(self, message: str, *, line: int | None, field: str = "code") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = f" ({self.field}, line {self.line})" if self.line is not None else ""
        return f"{self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready facts: message, line, field."""
        return {"message": self.message, "line": self.line, "field": self.field}


class ArtifactError(ModelCodeError):
    """An uploaded trained model (`.keras`, PyTorch weights or ONNX) cannot be loaded."""

    def __init__(self, message: str) -> None:
        super().__init__(message, line=None, field="artifact")


class TrainingSettingsError(FrameworkError):
    """Training settings (fit/evaluate arguments, batch size) that the model cannot train with.

    `field` names the setting: `"batch_size"`, `"fit_kwargs"`, `"eval_kwargs"`, or None when the
    dry run failed without pointing at one setting.
    """

    def __init__(self, message: str, *, field: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready facts: message, field."""
        return {"message": self.message, "field": self.field}


class InputShapeError(FrameworkError):
    """A batch handed to `predict_batch` does not have the model's input shape."""


class ChainError(FrameworkError):
    """Models linked by parent links do not form one early-exit chain."""


class DeviceMoveError(RuntimeError):
    """A PyTorch model was asked to move to another device after its optimizer was made: the
    optimizer's state would stay behind on the old device."""


class OnnxExportUnavailable(FrameworkError):
    """ONNX export cannot run in this environment; the message says why."""
