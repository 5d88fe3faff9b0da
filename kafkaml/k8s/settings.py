"""Settings of the Kubernetes runner (KAFKAML_K8S_*), read once by the backend at start-up.

The defaults name the objects that deploy/k8s creates, so the runner works in that namespace
without any setting but the two images.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from pydantic_settings import BaseSettings

from kafkaml.k8s.specs import InferenceSpec, PodOptions, Resources, TrainingJobSpec
from kafkaml.settings import env_config


class KubernetesRunnerSettings(BaseSettings):
    """Where and how the runner starts training Jobs and inference Deployments."""

    model_config = env_config("KAFKAML_K8S_")

    namespace: str = Field(
        default="kafkaml", description="Namespace of the Jobs and Deployments the runner creates."
    )
    training_image: str = Field(
        default="ghcr.io/kafkaml/model-training:0.1.0", description="Image of training Jobs."
    )
    inference_image: str = Field(
        default="ghcr.io/kafkaml/model-inference:0.1.0", description="Image of inference replicas."
    )
    worker_service_account: str = Field(
        default="kafkaml-worker", description="ServiceAccount (no API rights) of workers."
    )
    worker_config_map: str = Field(
        default="kafkaml-config", description="ConfigMap of KAFKAML_* settings shared by workers."
    )
    worker_secret: str = Field(
        default="kafkaml-kafka-credentials",
        description="Secret of Kafka credentials (KAFKAML_KAFKA_SASL_*) for workers; optional.",
    )
    kafka_ca_secret: str = Field(
        default="",
        description="Secret holding the Kafka brokers' CA certificate (key ca.crt), mounted into "
        "job pods as KAFKAML_KAFKA_SSL_CA_LOCATION; empty: the image's system CAs.",
    )
    scratch_size_limit: str = Field(
        default="10Gi",
        description="Size limit of a job pod's writable /scratch volume (training's spill files).",
    )
    tmp_size_limit: str = Field(default="1Gi", description="Size limit of a job pod's /tmp volume.")
    training_cpu_request: str = Field(default="1", description="CPU request of a training pod.")
    training_memory_request: str = Field(
        default="2Gi", description="Memory request of a training pod."
    )
    training_memory_limit: str = Field(
        default="4Gi", description="Memory limit of a training pod (beyond it: OOMKilled, failed)."
    )
    inference_cpu_request: str = Field(
        default="500m", description="CPU request of an inference replica."
    )
    inference_memory_request: str = Field(
        default="1Gi", description="Memory request of an inference replica."
    )
    inference_memory_limit: str = Field(
        default="2Gi", description="Memory limit of an inference replica."
    )
    gpu_node_selector: str = Field(
        default="",
        description="key=value node label that pods asking for GPUs must run on; empty: any node.",
    )
    job_backoff_limit: int = Field(
        default=0, description="Retries of a failed training pod before its Job fails."
    )
    job_ttl_seconds: int = Field(
        default=3600, description="Seconds a finished Job (and its logs) is kept before deletion."
    )

    def training_job(
        self,
        *,
        result_ids: Sequence[int],
        deployment_id: int,
        job_token: str,
        gpus: int = 0,
    ) -> TrainingJobSpec:
        """The spec of the Job training `result_ids` (one result, or a chain edge first)."""
        return TrainingJobSpec(
            result_ids=tuple(result_ids),
            deployment_id=deployment_id,
            job_token=job_token,
            pod=self.training_pod(gpus=gpus),
            backoff_limit=self.job_backoff_limit,
            ttl_seconds_after_finished=self.job_ttl_seconds,
        )

    def inference(self, *, inference_id: int, replicas: int, job_token: str) -> InferenceSpec:
        """The spec of the Deployment running `replicas` replicas of an inference."""
        return InferenceSpec(
            inference_id=inference_id,
            replicas=replicas,
            job_token=job_token,
            pod=self.inference_pod(),
        )

    def training_pod(self, *, gpus: int = 0) -> PodOptions:
        """Pod options of a training Job asking for `gpus` whole GPUs."""
        resources = Resources(
            cpu_request=self.training_cpu_request,
            memory_request=self.training_memory_request,
            memory_limit=self.training_memory_limit,
            gpus=gpus,
        )
        return self._pod(self.training_image, resources)

    def inference_pod(self) -> PodOptions:
        """Pod options of an inference replica."""
        resources = Resources(
            cpu_request=self.inference_cpu_request,
            memory_request=self.inference_memory_request,
            memory_limit=self.inference_memory_limit,
        )
        return self._pod(self.inference_image, resources)

    def _pod(self, image: str, resources: Resources) -> PodOptions:
        node_selector: dict[str, str] = {}
        if resources.gpus and self.gpu_node_selector:
            key, _, value = self.gpu_node_selector.partition("=")
            node_selector[key.strip()] = value.strip()
        return PodOptions(
            image=image,
            env_from_config_maps=(self.worker_config_map,),
            env_from_secrets=(self.worker_secret,),
            resources=resources,
            service_account_name=self.worker_service_account,
            node_selector=node_selector,
            scratch_size_limit=self.scratch_size_limit,
            tmp_size_limit=self.tmp_size_limit,
            kafka_ca_secret=self.kafka_ca_secret or None,
        )
