"""The job's settings: environment variables with the `KAFKAML_` prefix, read once in __main__."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.settings import env_config

ReaderName = Literal["native", "tfio"]


class TrainingSettings(BaseSettings):
    """How one training job finds its work, reports it, and reads Kafka (KafkaSettings)."""

    model_config = env_config()

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the backend's job API."
    )
    job_token: SecretStr | None = Field(
        default=None,
        description="Job token(s) scoped to the result(s), comma-separated in result_ids order.",
    )
    result_ids: str | None = Field(
        default=None,
        description="Training result id, or comma-separated ids of a chain, edge (bottom) first.",
    )
    training_spec_file: Path | None = Field(
        default=None,
        description="Local mode (no backend): JSON spec document file (a list for a chain).",
    )
    training_output_dir: Path | None = Field(
        default=None,
        description="Local mode: folder for epochs, final metrics, artifacts and status files.",
    )
    training_reader: ReaderName | None = Field(
        default=None,
        description="Training data reader, `native` or `tfio`; overrides the spec's `reader`.",
    )
    training_control_timeout_s: float = Field(
        default=3600.0, gt=0, description="Fail when no control message arrives in this time."
    )
    training_stall_timeout_s: float = Field(
        default=60.0, gt=0, description="Fail when an announced range delivers nothing this long."
    )
    training_memory_limit_mb: int = Field(
        default=2048,
        gt=0,
        description="Training data larger than this is spilled to a file instead of memory.",
    )
    training_spill_dir: Path | None = Field(
        default=None, description="Folder for spilled training data (default: the temp dir)."
    )
    training_seed: int | None = Field(
        default=None, description="Seed of the train/validation/test shuffle (random if unset)."
    )
    federated_credentials: SecretStr | None = Field(
        default=None,
        description="Federated coordinator without a backend: its workers, `worker-id:secret,...`.",
    )
    federated_chunk_bytes: int = Field(
        default=512 * 1024,
        gt=0,
        description="Federated weights are sent in Kafka records of at most this many bytes.",
    )
    training_http_retries: int = Field(
        default=5, ge=0, description="Retries of a failed job API call before the job fails."
    )
    training_report_deadline_s: float = Field(
        default=900.0,
        ge=0,
        description="How long a job holds its reports for an unreachable backend, retrying, "
        "before it fails (training goes on meanwhile).",
    )

    def parsed_result_ids(self) -> list[int]:
        """`result_ids` as integers, in the given order; [] when unset.

        Raises ValueError for text that is not a comma-separated list of integers.
        """
        parts = [part.strip() for part in (self.result_ids or "").split(",") if part.strip()]
        try:
            return [int(part) for part in parts]
        except ValueError:
            raise ValueError(
                f"KAFKAML_RESULT_IDS {self.result_ids!r} is not a comma-separated list of ids"
            ) from None

    def tokens(self) -> list[str]:
        """The job tokens, one per result id (one token may serve every result)."""
        if self.job_token is None:
            return []
        return [part.strip() for part in self.job_token.get_secret_value().split(",")]
