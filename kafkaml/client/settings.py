"""The Python client's and the CLI's settings (`KAFKAML_CLIENT_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config


class ClientSettings(BaseSettings):
    """How long the Python client and the CLI wait for the backend's answers."""

    model_config = env_config("KAFKAML_CLIENT_")

    timeout_s: float = Field(
        default=60.0, gt=0, description="Seconds the client waits for the answer to a request."
    )
    create_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Seconds the client waits for calls that run model code on the backend "
        "first (creating, changing or importing a model, deploying, an ONNX download).",
    )
