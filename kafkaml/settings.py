"""What the project's settings classes share: how a class reads its `KAFKAML_*` environment
variables, and the one definition of each variable that more than one component reads.

A shared variable is defined here once (default, bounds, description), so that the components
that read it cannot drift apart; each class names its field as it likes (the backend's
`executor_timeout_s` is the executor's `timeout_s`, both `KAFKAML_EXECUTOR_TIMEOUT_S`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def env_config(prefix: str = "KAFKAML_") -> SettingsConfigDict:
    """The `model_config` of a settings class read from `<prefix><FIELD>` variables: an empty
    variable counts as unset, a variable of no field is ignored."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_ignore_empty=True)


def data_dir_field() -> Any:
    """`KAFKAML_DATA_DIR` (the local stack and the backend)."""
    return Field(
        default=PROJECT_ROOT / ".cache" / "data",
        description="Folder for the local database, model artifacts and job logs.",
    )


def backend_url_field() -> Any:
    """`KAFKAML_BACKEND_URL` (the backend, which hands it to jobs, and the control logger)."""
    return Field(
        default="http://127.0.0.1:8000",
        description="URL at which jobs reach this backend (handed to them as KAFKAML_BACKEND_URL).",
    )


def control_topic_field() -> Any:
    """`KAFKAML_CONTROL_TOPIC` (the backend and the control logger)."""
    # Imported here: kafkaml.protocol reads Kafka, and kafkaml.kafka's settings use this module.
    from kafkaml.protocol import DEFAULT_CONTROL_TOPIC

    return Field(
        default=DEFAULT_CONTROL_TOPIC,
        description="Kafka topic of the control messages that announce training data streams.",
    )


def executor_timeout_field() -> Any:
    """`KAFKAML_EXECUTOR_TIMEOUT_S` (the executor service, and the backend as its client)."""
    return Field(default=30.0, gt=0, description="Wall-time limit of one validation's code.")
