"""Settings of the executor's HTTP service (environment variables `KAFKAML_EXECUTOR_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config, executor_timeout_field
from mlcode_executor.checks import GIB


class ExecutorSettings(BaseSettings):
    """How the model-code executor service listens and limits each validation."""

    model_config = env_config("KAFKAML_EXECUTOR_")

    host: str = Field(default="0.0.0.0", description="Address the executor's HTTP service binds.")
    port: int = Field(default=8001, description="Port of the executor's HTTP service.")
    timeout_s: float = executor_timeout_field()
    memory_bytes: int = Field(
        default=2 * GIB,
        gt=0,
        description="Memory one validation's code may add to the framework's own.",
    )
    spares: bool = Field(
        default=True, description="Keep one warmed-up sandbox per framework waiting for a request."
    )
    max_concurrent: int = Field(
        default=2,
        ge=1,
        description="Validations run at once (per service, or per backend process in local mode).",
    )
    queue_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a validation waits for a free slot before the answer is 503 busy.",
    )
