"""The federated worker's settings: environment variables with the `KAFKAML_` prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafkaml.protocol import DEFAULT_CONTROL_TOPIC


class FederatedWorkerSettings(BaseSettings):
    """Who the worker is, which deployment it serves, and where its own data is announced."""

    model_config = SettingsConfigDict(env_prefix="KAFKAML_", extra="ignore", env_ignore_empty=True)

    worker_id: str = Field(
        description="Federated worker: its id, as registered for the deployment."
    )
    worker_credential: SecretStr = Field(
        description="Federated worker: secret it signs with, shared with the coordinator."
    )
    federated_deployment_id: int = Field(
        description="Federated worker: the deployment to train for."
    )
    dataset_control_topic: str = Field(
        default=DEFAULT_CONTROL_TOPIC,
        description="Federated worker: control topic on which its sink announced its dataset.",
    )
    dataset_id: int = Field(
        description="Federated worker: the id its sink announced the dataset under (deployment_id)."
    )
    worker_data_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="Federated worker: fail when its dataset is not announced in time.",
    )
    worker_idle_timeout_s: float | None = Field(
        default=None,
        description="Federated worker: exit when no round arrives this long (unset: never).",
    )
    worker_framework: Literal["tensorflow", "pytorch"] | None = Field(
        default=None,
        description="Federated worker: framework to import at start, so the first round is quick.",
    )
    worker_seed: int = Field(
        default=0, description="Federated worker: seed of its validation split."
    )
    federated_chunk_bytes: int = Field(
        default=512 * 1024,
        gt=0,
        description="Federated weights are sent in Kafka records of at most this many bytes.",
    )
