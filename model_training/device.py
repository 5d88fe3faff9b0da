"""Which device trains: a GPU when the framework sees one, the CPU otherwise."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def training_device(framework: str) -> str:
    """ "cuda" / "GPU" when the framework sees a GPU, else "cpu".

    TensorFlow places Keras training on its first GPU by itself. The PyTorch adapter moves each
    model it builds or loads to `kafkaml.frameworks.pytorch.default_device()`, the device named
    here, and trains, evaluates and predicts there. (See the README: the GPU path has not been
    run on a GPU here.)
    """
    if framework == "pytorch":
        from kafkaml.frameworks.pytorch import default_device

        return default_device().type
    import tensorflow as tf

    return "GPU" if tf.config.list_physical_devices("GPU") else "cpu"


def log_device(framework: str) -> None:
    """Log the device the job trains on."""
    log.info("%s trains on %s", framework, training_device(framework))
