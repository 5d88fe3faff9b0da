"""The backend's own settings: every `KAFKAML_` environment name the backend reads, in one place.

Built once by `settings.py` at start-up; Django settings hold the result (`settings.KAFKAML`), and
code reads that object rather than the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.settings import (
    backend_url_field,
    control_topic_field,
    data_dir_field,
    env_config,
    executor_timeout_field,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class BackendSettings(BaseSettings):
    """Settings of the kafkaml backend (REST API and job orchestration)."""

    model_config = env_config()

    data_dir: Path = data_dir_field()
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
    executor_timeout_s: float = executor_timeout_field()
    validate_training_settings: bool = Field(
        default=True,
        description="Dry-run a deployment's training settings in the executor before storing it.",
    )
    control_topic: str = control_topic_field()
    backend_url: str = backend_url_field()
    live_update_interval_s: float = Field(
        default=0.25,
        description="Interval of the live visualization's aggregated updates to a browser (the "
        "rate limit of one stream).",
    )
    live_stream_max_s: float = Field(
        default=300.0,
        description="Longest one live visualization stream stays open before the browser "
        "reconnects (bounds how long it holds a server thread).",
    )
    live_streams_max: int = Field(
        default=8,
        description="Live visualization streams one backend process serves at once; more are "
        "answered 503 so threads stay free for the API.",
    )
    frontend_dir: Path = Field(
        default=PROJECT_ROOT / "frontend" / "dist",
        description="Folder of the built web UI that the backend serves at `/`.",
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
    max_upload_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="Largest multipart request body (model artifacts, imports, job uploads); "
        "larger ones are answered 413 before they are read.",
    )
    job_token_max_age_s: int = Field(
        default=30 * 24 * 3600,
        description="Lifetime of a job token handed to a training or inference job, in seconds.",
    )
    service_token_max_age_s: int = Field(
        default=365 * 24 * 3600,
        description="Lifetime of a service token (the control logger's), in seconds.",
    )

    login_failures_per_user: int = Field(
        default=5,
        ge=1,
        description="Wrong passwords for one user name before its logins are refused (429).",
    )
    login_failures_per_address: int = Field(
        default=30,
        ge=1,
        description="Failed logins from one client address before its logins are refused (429).",
    )
    login_lockout_s: int = Field(
        default=300,
        ge=1,
        description="Window in which failed logins are counted, and how long a lockout lasts.",
    )
    csrf_trusted_origins: str = Field(
        default="",
        description="Comma-separated origins (scheme://host:port) besides the backend's own "
        "from which session logins and CSRF-checked requests are accepted.",
    )

    def resolved_secret_key(self) -> str:
        """The secret key; when none is configured, one kept in the data dir (made on first use)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        private_dir(self.data_dir)
        if not path.exists():
            # Created 0600 in one step: never readable by others, not even for a moment.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(50))
        return path.read_text().strip()

    def resolved_database_url(self) -> str:
        """The database URL; SQLite in the data dir when none is configured."""
        if self.database_url:
            return self.database_url
        private_dir(self.data_dir)
        return f"sqlite:///{self.data_dir / 'kafkaml.sqlite3'}"


def private_dir(path: Path) -> None:
    """Make `path` (and missing parents) and leave it 0700: the data dir holds the database,
    the secret key, the service token, artifacts and job logs, for the backend's user alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
