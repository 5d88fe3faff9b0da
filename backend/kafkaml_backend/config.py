"""The backend's own settings: every `KAFKAML_` environment name the backend reads, in one place.

Built once by `settings.py` at start-up; Django settings hold the result (`settings.KAFKAML`), and
code reads that object rather than the environment.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class BackendSettings(BaseSettings):
    """Settings of the kafkaml backend (REST API and job orchestration)."""

    model_config = SettingsConfigDict(env_prefix="KAFKAML_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(
        default=PROJECT_ROOT / ".cache" / "data",
        description="Folder for the local database, model artifacts and job logs.",
    )
    database_url: str | None = Field(
        default=None,
        description="Database URL (postgresql://user:pass@host:5432/db); SQLite in the data dir "
        "when unset.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Django secret key, also signs job tokens; generated once into the data dir "
        "when unset.",
    )
    debug: bool = Field(default=False, description="Django debug mode (never in production).")
    allowed_hosts: str = Field(
        default="*", description="Comma-separated host names the backend answers to."
    )
    runner: Literal["none", "local", "kubernetes"] = Field(
        default="none",
        description="How jobs are started: `none` leaves deployments and inferences in `created`"
        "; `local` runs them as child processes of the backend (logs in <data dir>/logs); "
        "`kubernetes` runs them as Jobs and Deployments (kafkaml.k8s).",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file of the cluster that `KAFKAML_RUNNER=kubernetes` runs jobs "
        "in; unset: the backend pod's service account (settings of the pods: `KAFKAML_K8S_*`).",
    )
    executor_url: str | None = Field(
        default=None,
        description="URL of the model code executor service; unset runs it as a local child "
        "process.",
    )
    executor_timeout_s: float = Field(
        default=30.0, description="Wall-time limit of one model code validation."
    )
    validate_training_settings: bool = Field(
        default=True,
        description="Dry-run a deployment's training settings in the executor before storing it.",
    )
    control_topic: str = Field(
        default="KAFKA_ML_CONTROL_TOPIC",
        description="Kafka topic of the control messages that announce training data streams.",
    )
    backend_url: str = Field(
        default="http://127.0.0.1:8000",
        description="URL at which jobs reach this backend (handed to them as KAFKAML_BACKEND_URL).",
    )
    restart_backoff_s: float = Field(
        default=1.0,
        gt=0,
        description="Local runner: wait before the first restart of a crashed replica; doubles.",
    )
    restart_backoff_max_s: float = Field(
        default=60.0,
        gt=0,
        description="Local runner: the longest wait between restarts of a crashing replica.",
    )
    restart_reset_s: float = Field(
        default=300.0,
        gt=0,
        description="Local runner: a replica that ran this long restarts again after the "
        "shortest backoff and its crash-loop count starts over.",
    )
    crash_loop_limit: int = Field(
        default=5,
        ge=1,
        description="Local runner: a replica that crashes this many times in a row (each "
        "within restart_reset_s of starting) fails its inference.",
    )
    job_token_max_age_s: int = Field(
        default=30 * 24 * 3600,
        description="Lifetime of a job token handed to a training or inference job, in seconds.",
    )
    service_token_max_age_s: int = Field(
        default=365 * 24 * 3600,
        description="Lifetime of a service token (the control logger's), in seconds.",
    )

    def resolved_secret_key(self) -> str:
        """The secret key; when none is configured, one kept in the data dir (made on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()

    def resolved_database_url(self) -> str:
        """The database URL; SQLite in the data dir when none is configured."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'kafkaml.sqlite3'}"
