"""Which device trains: a GPU when the framework sees one, the CPU otherwise."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def training_device(framework: str) -> str:
    """ "cuda" / "GPU" when the framework sees a GPU, else "cpu".

    TensorFlow places Keras training on its first GPU by itself; PyTorch modules stay where the
    framework adapter puts them (see the README: the GPU path is not exercised in CI).
    """
    if framework == "pytorch":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "cpu"


def log_device(framework: str) -> None:
    """Log the device the job trains on."""
    log.info("%s trains on %s", framework, training_device(framework))
