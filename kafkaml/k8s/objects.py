"""Build the typed Kubernetes objects for a workload spec; pure functions, no API calls.

Every object carries ownership labels so the runner and its reconciler find exactly what they
started, and nothing else, with a label selector:

- `app.kubernetes.io/managed-by: kafkaml-runner`, `app.kubernetes.io/component: training|inference`
- `kafkaml.io/deployment-id`, `kafkaml.io/result-<id>: "true"` (one per result, so a chain's Job is
  found from any of its results), `kafkaml.io/inference-id`
- annotation `kafkaml.io/result-ids: "3,4"` keeps the order of a chain's results.
"""

from __future__ import annotations

from kubernetes.client import (
    V1Capabilities,
    V1ConfigMapEnvSource,
    V1Container,
    V1ContainerPort,
    V1Deployment,
    V1DeploymentSpec,
    V1DeploymentStrategy,
    V1EmptyDirVolumeSource,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1HTTPGetAction,
    V1Job,
    V1JobSpec,
    V1KeyToPath,
    V1LabelSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodSecurityContext,
    V1PodSpec,
    V1PodTemplateSpec,
    V1Probe,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1Secret,
    V1SecretEnvSource,
    V1SecretKeySelector,
    V1SecretVolumeSource,
    V1SecurityContext,
    V1Toleration,
    V1Volume,
    V1VolumeMount,
)

from kafkaml.k8s.specs import (
    HttpProbe,
    InferenceSpec,
    PodOptions,
    TrainingJobSpec,
    WorkloadKind,
    quantity_bytes,
)

MANAGED_BY = "kafkaml-runner"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_DEPLOYMENT_ID = "kafkaml.io/deployment-id"
LABEL_INFERENCE_ID = "kafkaml.io/inference-id"
ANNOTATION_RESULT_IDS = "kafkaml.io/result-ids"
TOKEN_KEY = "token"
CONTAINER_NAME = "worker"
GPU_RESOURCE = "nvidia.com/gpu"
# model_training's threshold (MB) above which it spills its training data to a file.
SPILL_ENV = "KAFKAML_TRAINING_MEMORY_LIMIT_MB"
# Non-root user of every kafkaml image (the base stage of the root Dockerfile).
RUN_AS_USER = 10001
# The writable volumes of a job pod, and where the Kafka CA Secret is mounted.
SCRATCH_DIR = "/scratch"
SPILL_DIR_ENV = "KAFKAML_TRAINING_SPILL_DIR"
KAFKA_CA_DIR = "/etc/kafkaml/kafka-ca"
KAFKA_CA_KEY = "ca.crt"

COMPONENT = {WorkloadKind.RESULT: "training", WorkloadKind.INFERENCE: "inference"}


def spill_threshold_mb(memory_limit: str) -> int:
    """Training data beyond half the container's memory limit goes to disk instead of memory,
    so a large data set slows the job down rather than getting it OOMKilled."""
    return max(64, quantity_bytes(memory_limit) // 2 // 2**20)


def metadata_of(obj: V1Job | V1Deployment | V1Pod) -> V1ObjectMeta:
    """The object's metadata; every object the API server returns or we build has it."""
    if obj.metadata is None:
        raise ValueError(f"{type(obj).__name__} without metadata")
    return obj.metadata


def result_label(result_id: int) -> str:
    """The label key marking a training Job (and its pods) as training `result_id`."""
    return f"kafkaml.io/result-{result_id}"


def training_job_name(spec: TrainingJobSpec) -> str:
    """Named after the first result: stable, so a second start of the same job answers 409."""
    return f"kafkaml-training-{spec.result_ids[0]}"


def inference_name(inference_id: int) -> str:
    return f"kafkaml-inference-{inference_id}"


def token_secret_name(workload_name: str) -> str:
    return f"{workload_name}-token"


def selector(kind: WorkloadKind, object_id: int | None = None) -> str:
    """Label selector for the runner's workloads of `kind`, or for one result or inference."""
    terms = [f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_COMPONENT}={COMPONENT[kind]}"]
    if object_id is not None and kind is WorkloadKind.RESULT:
        terms.append(f"{result_label(object_id)}=true")
    elif object_id is not None:
        terms.append(f"{LABEL_INFERENCE_ID}={object_id}")
    return ",".join(terms)


def training_labels(spec: TrainingJobSpec) -> dict[str, str]:
    labels = _base_labels(WorkloadKind.RESULT)
    labels[LABEL_DEPLOYMENT_ID] = str(spec.deployment_id)
    labels.update({result_label(result_id): "true" for result_id in spec.result_ids})
    return labels


def inference_labels(spec: InferenceSpec) -> dict[str, str]:
    labels = _base_labels(WorkloadKind.INFERENCE)
    labels[LABEL_INFERENCE_ID] = str(spec.inference_id)
    return labels


def build_training_job(spec: TrainingJobSpec, namespace: str) -> V1Job:
    """The batch/v1 Job for `spec`: never restarted in place, retried `backoff_limit` times."""
    name = training_job_name(spec)
    labels = training_labels(spec)
    annotations = {ANNOTATION_RESULT_IDS: ",".join(str(i) for i in spec.result_ids)}
    env = {
        "KAFKAML_RESULT_IDS": annotations[ANNOTATION_RESULT_IDS],
        "KAFKAML_DEPLOYMENT_ID": str(spec.deployment_id),
    }
    if SPILL_ENV not in spec.pod.env:
        env[SPILL_ENV] = str(spill_threshold_mb(spec.pod.resources.memory_limit))
    if SPILL_DIR_ENV not in spec.pod.env:
        env[SPILL_DIR_ENV] = SCRATCH_DIR
    container = _container(spec.pod, env, token_secret_name(name))
    pod_spec = _pod_spec(spec.pod, container, restart_policy="Never")
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(
            name=name, namespace=namespace, labels=labels, annotations=annotations
        ),
        spec=V1JobSpec(
            backoff_limit=spec.backoff_limit,
            ttl_seconds_after_finished=spec.ttl_seconds_after_finished,
            active_deadline_seconds=spec.active_deadline_seconds,
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels, annotations=annotations), spec=pod_spec
            ),
        ),
    )


def build_inference_deployment(spec: InferenceSpec, namespace: str) -> V1Deployment:
    """The apps/v1 Deployment for `spec`: `replicas` consumers in one consumer group."""
    name = inference_name(spec.inference_id)
    labels = inference_labels(spec)
    env = {"KAFKAML_INFERENCE_ID": str(spec.inference_id)}
    if spec.probe is not None:
        # The replica serves Prometheus /metrics on this port, which the probes also ask.
        env["KAFKAML_INFERENCE_METRICS_PORT"] = str(spec.probe.port)
    container = _container(spec.pod, env, token_secret_name(name))
    if spec.probe is not None:
        container.ports = [V1ContainerPort(name="metrics", container_port=spec.probe.port)]
        container.liveness_probe = _probe(spec.probe, initial_delay_seconds=30)
        container.readiness_probe = _probe(spec.probe, initial_delay_seconds=5)
    pod_spec = _pod_spec(spec.pod, container, restart_policy="Always")
    pod_spec.termination_grace_period_seconds = spec.termination_grace_period_seconds
    match_labels = {k: labels[k] for k in (LABEL_MANAGED_BY, LABEL_COMPONENT, LABEL_INFERENCE_ID)}
    return V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=V1DeploymentSpec(
            replicas=spec.replicas,
            selector=V1LabelSelector(match_labels=match_labels),
            # Rolling updates swap replicas one by one; the consumer group rebalances in between.
            strategy=V1DeploymentStrategy(type="RollingUpdate"),
            template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels=labels), spec=pod_spec),
        ),
    )


def build_token_secret(
    workload: V1Job | V1Deployment, token: str, owner_uid: str | None
) -> V1Secret:
    """The Secret holding a workload's job token, owned by the workload when its uid is known.

    Owned, it is garbage-collected with the Job (after ttlSecondsAfterFinished) or Deployment.
    """
    meta = metadata_of(workload)
    name = str(meta.name)
    owners = None
    if owner_uid is not None:
        owners = [
            V1OwnerReference(
                api_version=str(workload.api_version),
                kind=str(workload.kind),
                name=name,
                uid=owner_uid,
                block_owner_deletion=False,
            )
        ]
    return V1Secret(
        api_version="v1",
        kind="Secret",
        metadata=V1ObjectMeta(
            name=token_secret_name(name),
            namespace=meta.namespace,
            labels=dict(meta.labels or {}),
            owner_references=owners,
        ),
        type="Opaque",
        string_data={TOKEN_KEY: token},
    )


def _base_labels(kind: WorkloadKind) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kafkaml",
        LABEL_COMPONENT: COMPONENT[kind],
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def _container(pod: PodOptions, runner_env: dict[str, str], secret_name: str) -> V1Container:
    env = [V1EnvVar(name=name, value=value) for name, value in sorted(pod.env.items())]
    env += [V1EnvVar(name=name, value=value) for name, value in runner_env.items()]
    mounts = [
        V1VolumeMount(name="tmp", mount_path="/tmp"),
        V1VolumeMount(name="scratch", mount_path=SCRATCH_DIR),
    ]
    if pod.kafka_ca_secret is not None:
        ca_file = f"{KAFKA_CA_DIR}/{KAFKA_CA_KEY}"
        env.append(V1EnvVar(name="KAFKAML_KAFKA_SSL_CA_LOCATION", value=ca_file))
        mounts.append(V1VolumeMount(name="kafka-ca", mount_path=KAFKA_CA_DIR, read_only=True))
    token_ref = V1SecretKeySelector(name=secret_name, key=TOKEN_KEY)
    env.append(
        V1EnvVar(name="KAFKAML_JOB_TOKEN", value_from=V1EnvVarSource(secret_key_ref=token_ref))
    )
    env_from = [
        V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name=n))
        for n in pod.env_from_config_maps
    ]
    env_from += [
        V1EnvFromSource(secret_ref=V1SecretEnvSource(name=n, optional=True))
        for n in pod.env_from_secrets
    ]
    return V1Container(
        name=CONTAINER_NAME,
        image=pod.image,
        image_pull_policy=pod.image_pull_policy,
        env=env,
        env_from=env_from or None,
        resources=_resources(pod),
        security_context=V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=V1Capabilities(drop=["ALL"]),
        ),
        # The root filesystem is read-only: frameworks write their temporary files to /tmp,
        # training spills its data to /scratch; both are size-limited emptyDirs.
        volume_mounts=mounts,
    )


def _resources(pod: PodOptions) -> V1ResourceRequirements:
    resources = pod.resources
    requests = {"cpu": resources.cpu_request, "memory": resources.memory_request}
    limits = {"memory": resources.memory_limit}
    if resources.cpu_limit is not None:
        limits["cpu"] = resources.cpu_limit
    if resources.gpus:
        # Extended resources cannot be overcommitted: request and limit must be equal.
        requests[GPU_RESOURCE] = str(resources.gpus)
        limits[GPU_RESOURCE] = str(resources.gpus)
    return V1ResourceRequirements(requests=requests, limits=limits)


def _pod_spec(pod: PodOptions, container: V1Container, restart_policy: str) -> V1PodSpec:
    tolerations = None
    if pod.resources.gpus:
        # GPU node pools are usually tainted so that only GPU workloads land there.
        tolerations = [V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")]
    return V1PodSpec(
        containers=[container],
        restart_policy=restart_policy,
        service_account_name=pod.service_account_name,
        # Workers talk to the backend's REST API, never to the Kubernetes API.
        automount_service_account_token=False,
        security_context=V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            fs_group=RUN_AS_USER,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        tolerations=tolerations,
        node_selector=dict(pod.node_selector) or None,
        # Service links would inject KAFKAML_KAFKA_PORT and the like into our settings' prefix.
        enable_service_links=False,
        volumes=_volumes(pod),
    )


def _volumes(pod: PodOptions) -> list[V1Volume]:
    volumes = [
        V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit=pod.tmp_size_limit)),
        V1Volume(
            name="scratch", empty_dir=V1EmptyDirVolumeSource(size_limit=pod.scratch_size_limit)
        ),
    ]
    if pod.kafka_ca_secret is not None:
        source = V1SecretVolumeSource(
            secret_name=pod.kafka_ca_secret,
            items=[V1KeyToPath(key=KAFKA_CA_KEY, path=KAFKA_CA_KEY)],
            default_mode=0o444,
        )
        volumes.append(V1Volume(name="kafka-ca", secret=source))
    return volumes


def _probe(probe: HttpProbe, initial_delay_seconds: int) -> V1Probe:
    return V1Probe(
        http_get=V1HTTPGetAction(path=probe.path, port="metrics"),
        initial_delay_seconds=initial_delay_seconds,
        period_seconds=probe.period_seconds,
        failure_threshold=probe.failure_threshold,
    )
