"""Settings of one inference replica, read once from `KAFKAML_*` environment variables."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config


class SettingsError(ValueError):
    """The settings do not say where to take the inference spec from."""


class InferenceSettings(BaseSettings):
    """How one inference replica finds its model and paces its micro-batches."""

    model_config = env_config("KAFKAML_INFERENCE_")

    id: int | None = Field(
        default=None,
        description="Inference id; names the consumer group `kafkaml-inference-<id>` "
        "(backend mode: required; spec-file mode: overrides the file's `inference_id`).",
    )
    spec_file: Path | None = Field(
        default=None,
        description="Spec-file mode: a JSON inference spec with `artifact_path`, used instead of "
        "the backend; editing its `model_version` and `artifact_path` swaps the model.",
    )
    max_batch: int = Field(
        default=10_000, ge=1, description="Most records consumed, predicted and committed at once."
    )
    max_wait_ms: int = Field(
        default=20,
        ge=0,
        description="Longest wait for a micro-batch to fill before it is processed.",
    )
    spec_poll_s: float = Field(
        default=5.0, gt=0, description="Seconds between two checks of the spec for a model swap."
    )
    replica: str | None = Field(
        default=None,
        description="Stable name of this replica in its transactional.id "
        "`kafkaml-inference-<id>-<replica>`; a restarted replica with the same name fences "
        "its predecessor at once (default: the host name).",
    )
    transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="How long the broker keeps a transaction of a vanished replica open "
        "before aborting it.",
    )
    outage_s: float = Field(
        default=300.0,
        gt=0,
        description="How long a replica waits for an absent broker (retrying its transaction, "
        "then a new producer) before it exits and its runner restarts it.",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="How long the group waits for a silent (crashed) replica before its "
        "partitions go to the others.",
    )
    linger_ms: int = Field(
        default=5, ge=0, description="Producer linger: the commit of each batch waits for it."
    )
    model_threads: int = Field(
        default=1,
        ge=1,
        description="CPU threads of one PyTorch prediction call; more than 1 pays only on "
        "cores the broker does not share.",
    )
    dlq_topic: str | None = Field(
        default=None, description="Dead-letter topic (default: `<input topic>.dlq`)."
    )
    input_bootstrap: str | None = Field(
        default=None, description="Brokers of the input topic; overrides the spec's."
    )
    output_bootstrap: str | None = Field(
        default=None, description="Brokers of the output topic; overrides the spec's."
    )
    upper_bootstrap: str | None = Field(
        default=None, description="Brokers of the early-exit upper topic; overrides the spec's."
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint; 0: off."
    )

    @property
    def replica_name(self) -> str:
        """The replica's name: the setting, else the host name (a Kubernetes pod's name)."""
        return self.replica or socket.gethostname()


class JobApiSettings(BaseSettings):
    """How a job reaches the backend's job API (backend mode)."""

    model_config = env_config()

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the backend's job API."
    )
    job_token: SecretStr | None = Field(
        default=None, description="Bearer token scoped to the job's training result or inference."
    )
