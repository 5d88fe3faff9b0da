"""The objects the runner builds: their exact shape, and strict validity for Kubernetes 1.37."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from kafkaml.k8s import objects
from kafkaml.k8s.errors import SpecError
from kafkaml.k8s.settings import KubernetesRunnerSettings
from kafkaml.k8s.specs import (
    HttpProbe,
    PodOptions,
    Resources,
    TrainingJobSpec,
    WorkloadKind,
    quantity_bytes,
)
from kafkaml.k8s.tests.conftest import NAMESPACE, inference_spec, serialize, training_spec

# The Kubernetes version every object and manifest is validated against (current at writing).
KUBERNETES_VERSION = "1.37.0"

TRAINING_LABELS = {
    "app.kubernetes.io/name": "kafkaml",
    "app.kubernetes.io/component": "training",
    "app.kubernetes.io/managed-by": "kafkaml-runner",
    "kafkaml.io/deployment-id": "3",
    "kafkaml.io/result-7": "true",
    "kafkaml.io/result-8": "true",
}
HARDENED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
NON_ROOT_POD = {
    "fsGroup": 10001,
    "runAsGroup": 10001,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
EXPECTED_TRAINING_JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "kafkaml-training-7",
        "namespace": "kafkaml",
        "labels": TRAINING_LABELS,
        "annotations": {"kafkaml.io/result-ids": "7,8"},
    },
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
        "template": {
            "metadata": {
                "labels": TRAINING_LABELS,
                "annotations": {"kafkaml.io/result-ids": "7,8"},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "restartPolicy": "Never",
                "securityContext": NON_ROOT_POD,
                "volumes": [
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "scratch", "emptyDir": {"sizeLimit": "10Gi"}},
                ],
                "containers": [
                    {
                        "name": "worker",
                        "image": "ghcr.io/kafkaml/model-training:0.1.0",
                        "imagePullPolicy": "IfNotPresent",
                        "env": [
                            {"name": "KAFKAML_BACKEND_URL", "value": "http://kafkaml-backend:8000"},
                            {"name": "KAFKAML_RESULT_IDS", "value": "7,8"},
                            {"name": "KAFKAML_DEPLOYMENT_ID", "value": "3"},
                            # Half of the 3Gi memory limit.
                            {"name": "KAFKAML_TRAINING_MEMORY_LIMIT_MB", "value": "1536"},
                            {"name": "KAFKAML_TRAINING_SPILL_DIR", "value": "/scratch"},
                            {
                                "name": "KAFKAML_JOB_TOKEN",
                                "valueFrom": {
                                    "secretKeyRef": {
                                        "name": "kafkaml-training-7-token",
                                        "key": "token",
                                    }
                                },
                            },
                        ],
                        "envFrom": [
                            {"configMapRef": {"name": "kafkaml-config"}},
                            {"secretRef": {"name": "kafkaml-kafka", "optional": True}},
                        ],
                        "resources": {
                            "requests": {"cpu": "1", "memory": "2Gi"},
                            "limits": {"memory": "3Gi"},
                        },
                        "securityContext": HARDENED_CONTAINER,
                        "volumeMounts": [
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "scratch", "mountPath": "/scratch"},
                        ],
                    }
                ],
            },
        },
    },
}


def gpu_training_spec() -> TrainingJobSpec:
    pod = PodOptions(
        image="ghcr.io/kafkaml/model-training:0.1.0-gpu",
        resources=Resources(cpu_request="4", cpu_limit="8", memory_limit="16Gi", gpus=2),
        service_account_name="kafkaml-worker",
    )
    return training_spec(pod=pod, backoff_limit=2, active_deadline_seconds=86400)


BUILT_OBJECTS: dict[str, Callable[[], Any]] = {
    "training job": lambda: objects.build_training_job(training_spec(), NAMESPACE),
    "gpu training job": lambda: objects.build_training_job(gpu_training_spec(), NAMESPACE),
    "inference deployment": lambda: objects.build_inference_deployment(inference_spec(), NAMESPACE),
    "inference without probe": lambda: objects.build_inference_deployment(
        inference_spec(probe=None, replicas=0), NAMESPACE
    ),
    "training job with the kafka ca": lambda: objects.build_training_job(
        training_spec(pod=PodOptions(image="i", kafka_ca_secret="kafka-ca")), NAMESPACE
    ),
    "owned token secret": lambda: objects.build_token_secret(
        objects.build_training_job(training_spec(), NAMESPACE), "secret-token", "0f1e-uid"
    ),
    "unowned token secret": lambda: objects.build_token_secret(
        objects.build_inference_deployment(inference_spec(), NAMESPACE), "secret-token", None
    ),
}


def test_training_job_is_exactly_the_documented_job() -> None:
    job = objects.build_training_job(training_spec(), NAMESPACE)

    assert serialize(job) == EXPECTED_TRAINING_JOB


@pytest.mark.parametrize("name", sorted(BUILT_OBJECTS))
def test_every_built_object_passes_strict_validation_for_current_kubernetes(name: str) -> None:
    body = serialize(BUILT_OBJECTS[name]())

    assert kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True) == "1.37"


@pytest.mark.parametrize("version", ["1.33.0", "1.34.0", "1.35.0", "1.36.0"])
def test_every_built_object_is_also_valid_for_the_still_supported_releases(version: str) -> None:
    for build in BUILT_OBJECTS.values():
        assert kubernetes_validate.validate(serialize(build()), version, strict=True) == version[:4]


def test_strict_validation_rejects_a_field_kubernetes_does_not_know() -> None:
    body = serialize(objects.build_training_job(training_spec(), NAMESPACE))
    body["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def test_gpu_job_requests_and_limits_whole_nvidia_gpus_and_tolerates_the_gpu_taint() -> None:
    body = serialize(objects.build_training_job(gpu_training_spec(), NAMESPACE))
    pod = body["spec"]["template"]["spec"]

    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "1Gi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["serviceAccountName"] == "kafkaml-worker"
    assert body["spec"]["backoffLimit"] == 2
    assert body["spec"]["activeDeadlineSeconds"] == 86400


def test_inference_deployment_runs_the_replicas_with_probes_resources_and_its_token() -> None:
    body = serialize(objects.build_inference_deployment(inference_spec(), NAMESPACE))
    pod = body["spec"]["template"]["spec"]
    container = pod["containers"][0]
    probe = {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10}

    assert body["metadata"]["name"] == "kafkaml-inference-5"
    assert body["spec"]["replicas"] == 3
    assert container["livenessProbe"] == {**probe, "initialDelaySeconds": 30, "failureThreshold": 3}
    assert container["readinessProbe"] == {**probe, "initialDelaySeconds": 5, "failureThreshold": 3}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100}]
    assert container["env"] == [
        {"name": "KAFKAML_INFERENCE_ID", "value": "5"},
        {"name": "KAFKAML_INFERENCE_METRICS_PORT", "value": "9100"},
        {
            "name": "KAFKAML_JOB_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "kafkaml-inference-5-token", "key": "token"}},
        },
    ]
    assert pod["restartPolicy"] == "Always"
    assert pod["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize("name", ["training job", "gpu training job", "inference deployment"])
def test_a_job_pod_writes_only_to_size_limited_empty_dirs_and_holds_no_api_token(
    name: str,
) -> None:
    pod = serialize(BUILT_OBJECTS[name]())["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}

    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == NON_ROOT_POD
    assert container["securityContext"] == HARDENED_CONTAINER
    for mount in container["volumeMounts"]:
        limit = volumes[mount["name"]].get("emptyDir", {}).get("sizeLimit")
        assert limit is not None or mount.get("readOnly") is True, mount
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/scratch"}


def test_the_kafka_ca_secret_is_mounted_read_only_and_named_by_the_client_setting() -> None:
    pod = serialize(BUILT_OBJECTS["training job with the kafka ca"]())["spec"]["template"]["spec"]
    [container] = pod["containers"]

    assert {"name": "kafka-ca", "mountPath": "/etc/kafkaml/kafka-ca", "readOnly": True} in (
        container["volumeMounts"]
    )
    assert {
        "name": "kafka-ca",
        "secret": {
            "secretName": "kafka-ca",
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "defaultMode": 0o444,
        },
    } in pod["volumes"]
    assert {"name": "KAFKAML_KAFKA_SSL_CA_LOCATION", "value": "/etc/kafkaml/kafka-ca/ca.crt"} in (
        container["env"]
    )


def test_inference_without_probe_serves_no_metrics_port() -> None:
    body = serialize(objects.build_inference_deployment(inference_spec(probe=None), NAMESPACE))
    container = body["spec"]["template"]["spec"]["containers"][0]

    assert "livenessProbe" not in container
    assert "ports" not in container
    assert [e["name"] for e in container["env"]] == ["KAFKAML_INFERENCE_ID", "KAFKAML_JOB_TOKEN"]


def test_deployment_selector_selects_its_own_pods_and_no_other_inference() -> None:
    body = serialize(objects.build_inference_deployment(inference_spec(), NAMESPACE))
    selected = body["spec"]["selector"]["matchLabels"]
    pod_labels = body["spec"]["template"]["metadata"]["labels"]
    other = serialize(objects.build_inference_deployment(inference_spec(inference_id=6), NAMESPACE))

    assert selected.items() <= pod_labels.items()
    assert not selected.items() <= other["spec"]["template"]["metadata"]["labels"].items()


def test_token_secret_is_owned_by_its_job_so_it_is_collected_with_it() -> None:
    job = objects.build_training_job(training_spec(), NAMESPACE)
    body = serialize(objects.build_token_secret(job, "secret-token", "0f1e-uid"))

    assert body["metadata"]["name"] == "kafkaml-training-7-token"
    assert body["metadata"]["labels"] == TRAINING_LABELS
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "kafkaml-training-7",
            "uid": "0f1e-uid",
            "blockOwnerDeletion": False,
        }
    ]
    assert body["stringData"] == {"token": "secret-token"}


def test_selector_of_a_result_finds_the_chain_job_from_any_of_its_results() -> None:
    labels = serialize(objects.build_training_job(training_spec(), NAMESPACE))["metadata"]["labels"]

    for result_id in (7, 8):
        terms = objects.selector(WorkloadKind.RESULT, result_id).split(",")
        assert all(labels.get(k) == v for k, v in (term.split("=") for term in terms))
    assert "kafkaml.io/result-9=true" in objects.selector(WorkloadKind.RESULT, 9)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: training_spec(result_ids=()), "result_ids"),
        (lambda: training_spec(result_ids=(4, 4)), "result_ids"),
        (lambda: training_spec(deployment_id=0), "deployment_id"),
        (lambda: training_spec(job_token=""), "job_token"),
        (lambda: training_spec(backoff_limit=-1), "backoff_limit"),
        (lambda: PodOptions(image=" "), "image"),
        (lambda: PodOptions(image="i", env={"KAFKAML_JOB_TOKEN": "x"}), "env"),
        (lambda: PodOptions(image="i", env={"1BAD": "x"}), "env"),
        (lambda: PodOptions(image="i", env_from_secrets=("Not_A_Name",)), "env_from"),
        (lambda: PodOptions(image="i", image_pull_policy="Sometimes"), "image_pull_policy"),
        (lambda: PodOptions(image="i", node_selector={"bad key!": "x"}), "node_selector"),
        (lambda: PodOptions(image="i", scratch_size_limit="10 GB"), "scratch_size_limit"),
        (lambda: PodOptions(image="i", kafka_ca_secret="Not_A_Name"), "kafka_ca_secret"),
        (
            lambda: PodOptions(
                image="i", kafka_ca_secret="ca", env={"KAFKAML_KAFKA_SSL_CA_LOCATION": "/x"}
            ),
            "env",
        ),
        (lambda: Resources(memory_limit="4 GB"), "memory_limit"),
        (lambda: Resources(cpu_request="half"), "cpu_request"),
        (lambda: Resources(gpus=-1), "gpus"),
        (lambda: HttpProbe(port=0), "probe.port"),
        (lambda: inference_spec(replicas=-1), "replicas"),
    ],
)
def test_invalid_spec_raises_spec_error_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        build()

    assert caught.value.field == field


def test_runner_settings_build_gpu_training_pods_pinned_to_gpu_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAML_K8S_TRAINING_IMAGE", "registry.example/kafkaml/training:1.2")
    monkeypatch.setenv("KAFKAML_K8S_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true")
    monkeypatch.setenv("KAFKAML_K8S_TRAINING_MEMORY_LIMIT", "24Gi")
    settings = KubernetesRunnerSettings()

    spec = training_spec(pod=settings.training_pod(gpus=1))
    body = serialize(objects.build_training_job(spec, settings.namespace))
    pod = body["spec"]["template"]["spec"]

    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["serviceAccountName"] == "kafkaml-worker"
    assert pod["containers"][0]["image"] == "registry.example/kafkaml/training:1.2"
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "24Gi", "nvidia.com/gpu": "1"}
    assert pod["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "kafkaml-config"}},
        {"secretRef": {"name": "kafkaml-kafka-credentials", "optional": True}},
    ]
    assert kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True) == "1.37"


def test_runner_settings_keep_cpu_only_pods_off_the_gpu_node_selector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAML_K8S_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true")
    settings = KubernetesRunnerSettings()

    assert settings.training_pod(gpus=0).node_selector == {}
    assert settings.inference_pod().node_selector == {}


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("2G", 2 * 10**9),
        ("300k", 300_000),
        ("1e9", 10**9),
        ("3000000", 3_000_000),
        ("2000m", 2),
    ],
)
def test_memory_quantities_convert_to_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_training_spills_data_beyond_half_its_memory_limit_unless_told_otherwise() -> None:
    big = PodOptions(image="i", resources=Resources(memory_limit="16Gi"))
    told = PodOptions(image="i", env={"KAFKAML_TRAINING_MEMORY_LIMIT_MB": "100"})

    def env_of(pod: PodOptions) -> dict[str, str]:
        body = serialize(objects.build_training_job(training_spec(pod=pod), NAMESPACE))
        env = body["spec"]["template"]["spec"]["containers"][0]["env"]
        return {e["name"]: e.get("value") for e in env}

    assert env_of(big)["KAFKAML_TRAINING_MEMORY_LIMIT_MB"] == "8192"
    assert env_of(told)["KAFKAML_TRAINING_MEMORY_LIMIT_MB"] == "100"
    assert list(env_of(told)).count("KAFKAML_TRAINING_MEMORY_LIMIT_MB") == 1


def test_runner_settings_build_whole_specs_with_their_retry_and_cleanup_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAML_K8S_JOB_BACKOFF_LIMIT", "2")
    monkeypatch.setenv("KAFKAML_K8S_JOB_TTL_SECONDS", "600")
    monkeypatch.setenv("KAFKAML_K8S_INFERENCE_IMAGE", "registry.example/kafkaml/inference:1.2")
    settings = KubernetesRunnerSettings()

    job = settings.training_job(result_ids=[4, 5], deployment_id=2, job_token="t4,t5", gpus=1)
    inference = settings.inference(inference_id=9, replicas=2, job_token="t9")

    assert (job.result_ids, job.backoff_limit, job.ttl_seconds_after_finished) == ((4, 5), 2, 600)
    assert job.pod.resources.gpus == 1
    assert (inference.replicas, inference.pod.image) == (
        2,
        "registry.example/kafkaml/inference:1.2",
    )
    for body in (
        serialize(objects.build_training_job(job, settings.namespace)),
        serialize(objects.build_inference_deployment(inference, settings.namespace)),
    ):
        assert kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True) == "1.37"
