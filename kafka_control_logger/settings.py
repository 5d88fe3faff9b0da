"""Settings of the control logger (`KAFKAML_` environment names)."""

from __future__ import annotations

from kafkaml.protocol import DEFAULT_CONTROL_TOPIC
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LoggerSettings(BaseSettings):
    """Where the control logger reads control messages and where it records them."""

    model_config = SettingsConfigDict(env_prefix="KAFKAML_", extra="ignore")

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the kafkaml backend."
    )
    service_token: SecretStr = Field(
        description="Service token for the backend (`manage.py issue_service_token`)."
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
