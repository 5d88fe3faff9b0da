"""Settings of the executor's HTTP service (environment variables `KAFKAML_EXECUTOR_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcode_executor.checks import GIB


class ExecutorSettings(BaseSettings):
    """How the model-code executor service listens and limits each validation."""

    model_config = SettingsConfigDict(env_prefix="KAFKAML_EXECUTOR_")

    host: str = Field("0.0.0.0", description="Address the executor's HTTP service binds.")
    port: int = Field(8001, description="Port of the executor's HTTP service.")
    timeout_s: float = Field(30.0, gt=0, description="Wall-time limit of one validation's code.")
    memory_bytes: int = Field(
        2 * GIB, gt=0, description="Memory one validation's code may add to the framework's own."
    )
    max_concurrent: int = Field(
        2, ge=1, description="Validations run at once; further requests wait their turn."
    )
