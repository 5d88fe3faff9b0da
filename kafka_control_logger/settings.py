"""Settings of the control logger (`KAFKAML_` environment names)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.settings import backend_url_field, control_topic_field, env_config


class LoggerSettings(BaseSettings):
    """Where the control logger reads control messages and where it records them."""

    model_config = env_config()

    backend_url: str = backend_url_field()
    service_token: SecretStr | None = Field(
        default=None,
        description="Service token for the backend (`manage.py issue_service_token`).",
    )
    service_token_file: Path | None = Field(
        default=None, description="File holding the service token (instead of service_token)."
    )
    control_topic: str = control_topic_field()
    control_logger_group_id: str = Field(
        default="kafkaml-control-logger", description="Consumer group of the control logger."
    )
    backend_timeout_s: float = Field(
        default=10.0, description="Time limit of one request to the backend, in seconds."
    )
    backend_retry_max_s: float = Field(
        default=5.0, description="Longest wait between retries while the backend is down."
    )
    control_logger_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Answers of 500 to one control message (backend healthy) before it is a "
        "dead letter.",
    )
    control_logger_dead_letter_topic: str | None = Field(
        default=None,
        description="Dead-letter topic of the control logger (default: `<control topic>.dlq`).",
    )
    control_logger_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the control logger's Prometheus /metrics endpoint; 0: off.",
    )

    @property
    def dead_letter_topic(self) -> str:
        """Where records that cannot be recorded go."""
        return self.control_logger_dead_letter_topic or f"{self.control_topic}.dlq"

    def token(self) -> str:
        """The service token, from service_token or else service_token_file.

        Raises ValueError when neither is set, OSError when the file cannot be read.
        """
        if self.service_token is not None:
            return self.service_token.get_secret_value()
        if self.service_token_file is None:
            raise ValueError("set KAFKAML_SERVICE_TOKEN or KAFKAML_SERVICE_TOKEN_FILE")
        return self.service_token_file.read_text().strip()
