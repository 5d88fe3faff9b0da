"""Settings of the control logger (`KAFKAML_` environment names)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafkaml.protocol import DEFAULT_CONTROL_TOPIC


class LoggerSettings(BaseSettings):
    """Where the control logger reads control messages and where it records them."""

    model_config = SettingsConfigDict(env_prefix="KAFKAML_", extra="ignore", env_ignore_empty=True)

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the kafkaml backend."
    )
    service_token: SecretStr | None = Field(
        default=None,
        description="Service token for the backend (`manage.py issue_service_token`).",
    )
    service_token_file: Path | None = Field(
        default=None, description="File holding the service token (instead of service_token)."
    )
    control_topic: str = Field(
        default=DEFAULT_CONTROL_TOPIC, description="Kafka topic of the control messages."
    )
    control_logger_group_id: str = Field(
        default="kafkaml-control-logger", description="Consumer group of the control logger."
    )
    backend_timeout_s: float = Field(
        default=10.0, description="Time limit of one request to the backend, in seconds."
    )
    backend_retry_max_s: float = Field(
        default=5.0, description="Longest wait between retries while the backend is down."
    )

    def token(self) -> str:
        """The service token, from service_token or else service_token_file.

        Raises ValueError when neither is set, OSError when the file cannot be read.
        """
        if self.service_token is not None:
            return self.service_token.get_secret_value()
        if self.service_token_file is None:
            raise ValueError("set KAFKAML_SERVICE_TOKEN or KAFKAML_SERVICE_TOKEN_FILE")
        return self.service_token_file.read_text().strip()
