"""The federated worker's settings: environment variables with the `KAFKAML_` prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from kafkaml.protocol import DEFAULT_CONTROL_TOPIC
from kafkaml.settings import env_config


class FederatedWorkerSettings(BaseSettings):
    """Who the worker is, where it finds its deployments, and where its own data is announced.

    With the backend (the default): the credential the backend issued names the worker, and the
    worker joins the deployments its dataset fits. Without it (`federated_deployment_id` set):
    one deployment, and a worker id the coordinator's KAFKAML_FEDERATED_CREDENTIALS lists.
    """

    model_config = env_config()

    backend_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the backend's job API."
    )
    worker_credential: SecretStr = Field(
        description="Federated worker: the credential the backend issued it (shown once)."
    )
    worker_dataset: str | None = Field(
        default=None,
        description="Federated worker: the registered dataset it serves (unset: any of them).",
    )
    worker_discovery_interval_s: float = Field(
        default=5.0, gt=0, description="Federated worker: how often it asks for deployments."
    )
    worker_id: str | None = Field(
        default=None,
        description="Federated worker without a backend: its id in the coordinator's list.",
    )
    federated_deployment_id: int | None = Field(
        default=None,
        description="Federated worker without a backend: the one deployment to train for.",
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
        description="Federated worker: exit when no round or deployment comes this long "
        "(unset: never).",
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
