"""Every overlay of deploy/k8s renders with kustomize and passes `kubernetes-validate --strict`.

Rendering goes through deploy/k8s/render.sh, which installs the pinned kustomize into
.cache/bin on first use, and through `kubectl kustomize`, the kustomize bundled in the machine's
kubectl (.ci/run installs kubectl 1.30 where there is none): most users have only kubectl, and
older bundled kustomize versions fail on constructs the pinned one reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kafkaml.k8s import objects
from kafkaml.k8s.settings import KubernetesRunnerSettings
from kafkaml.k8s.tests.conftest import serialize
from kafkaml.settings_reference import settings as known_settings

ROOT = Path(__file__).resolve().parents[3]
RENDER = ROOT / "deploy" / "k8s" / "render.sh"
OVERLAYS = ("dev", "gpu", "prod")
# Current Kubernetes at writing; the newest that kubernetes-validate 1.37.0 ships schemas for.
KUBERNETES_VERSION = "1.37.0"
POD_OWNERS = ("Deployment", "StatefulSet", "Job")


def render(overlay: str) -> str:
    done = subprocess.run(
        ["bash", str(RENDER), overlay], capture_output=True, text=True, timeout=540, check=False
    )
    assert done.returncode == 0, f"render.sh {overlay} failed:\n{done.stderr}"
    return done.stdout


def render_with_kubectl(overlay: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "kubectl is missing: the overlays must render with the kustomize bundled in kubectl"
    )
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"kubectl kustomize {overlay} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet"]
    command += ["-k", KUBERNETES_VERSION, str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in POD_OWNERS
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_strict_validation_for_current_kubernetes(
    overlay: str, rendered: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(rendered[overlay])

    done = validate(path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(documents(rendered[overlay])) >= 15


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_same_objects_with_kubectls_bundled_kustomize(
    overlay: str, rendered: dict[str, str], tmp_path: Path
) -> None:
    text = render_with_kubectl(overlay)
    path = tmp_path / f"{overlay}-kubectl.yaml"
    path.write_text(text)

    done = validate(path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert documents(text) == documents(rendered[overlay])


def test_strict_validation_fails_a_manifest_with_an_unknown_field(
    rendered: dict[str, str], tmp_path: Path
) -> None:
    docs = documents(rendered["dev"])
    [backend] = find(docs, "Deployment", "kafkaml-backend")
    backend["spec"]["template"]["spec"]["containers"][0]["gpu"] = 1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))

    done = validate(path)

    assert done.returncode != 0
    assert "gpu" in done.stdout + done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runner_role_grants_only_what_the_runner_uses(
    overlay: str, rendered: dict[str, str]
) -> None:
    [role] = find(documents(rendered[overlay]), "Role", "kafkaml-runner")
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }

    assert grants == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("apps", "deployments"): {"create", "get", "list", "watch", "delete"},
        ("apps", "deployments/scale"): {"get", "patch", "update"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("", "events"): {"get", "list", "watch"},
        ("", "secrets"): {"create"},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard(
    overlay: str, rendered: dict[str, str]
) -> None:
    for name, spec in pod_specs(documents(rendered[overlay])):
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["enableServiceLinks"] is False, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
            assert "memory" in container["resources"]["limits"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_backend_may_use_the_kubernetes_api(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    [binding] = find(docs, "RoleBinding", "kafkaml-runner")

    assert [s["name"] for s in binding["subjects"]] == ["kafkaml-backend"]
    for name, spec in pod_specs(docs):
        if name != "kafkaml-backend":
            assert spec.get("automountServiceAccountToken") is False, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_executor_reaches_nothing_and_only_the_backend_reaches_it(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    [policy] = find(docs, "NetworkPolicy", "kafkaml-executor")
    [executor] = find(docs, "Deployment", "kafkaml-executor")
    backend = {"app.kubernetes.io/name": "kafkaml", "app.kubernetes.io/component": "backend"}

    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        executor["spec"]["template"]["metadata"]["labels"].items()
    )
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["spec"]["egress"] == []
    assert policy["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": backend}}],
            "ports": [{"port": 8001, "protocol": "TCP"}],
        }
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_pods_reach_only_dns_the_backend_and_kafka(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    [policy] = find(docs, "NetworkPolicy", "kafkaml-workers")
    defaults = KubernetesRunnerSettings()
    job = serialize(
        objects.build_training_job(
            defaults.training_job(result_ids=[1], deployment_id=1, job_token="t"), "kafkaml"
        )
    )
    reached = {
        (port["port"], port["protocol"]): rule.get("to", "anywhere")
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
    }

    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        job["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["spec"]["ingress"] == []
    assert set(reached) == {(53, "UDP"), (53, "TCP"), (8000, "TCP"), (9092, "TCP"), (9093, "TCP")}
    assert reached[(8000, "TCP")] == [
        {"podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "kafkaml", "app.kubernetes.io/component": "backend",
        }}}
    ]  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runner_defaults_name_objects_that_every_overlay_creates(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    defaults = KubernetesRunnerSettings()
    [config] = find(docs, "ConfigMap", "kafkaml-backend-config")

    assert find(docs, "ServiceAccount", defaults.worker_service_account)
    assert find(docs, "ConfigMap", defaults.worker_config_map)
    assert config["data"]["KAFKAML_RUNNER"] == "kubernetes"
    assert config["data"]["KAFKAML_K8S_WORKER_SECRET"] == defaults.worker_secret


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_use_the_same_kafkaml_names_as_local_mode(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    settings = find(docs, "ConfigMap") + [
        doc for doc in find(docs, "Secret") if doc["metadata"]["name"] != "kafkaml-postgres"
    ]

    for doc in settings:
        for key in {**doc.get("data", {}), **doc.get("stringData", {})}:
            assert key.startswith("KAFKAML_"), (doc["metadata"]["name"], key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_routes_to_pods_of_the_overlay(
    overlay: str, rendered: dict[str, str]
) -> None:
    docs = documents(rendered[overlay])
    pod_labels = [
        doc["spec"]["template"]["metadata"]["labels"] for doc in docs if doc["kind"] in POD_OWNERS
    ]

    for service in find(docs, "Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pod_labels), service["metadata"]


def test_prod_ships_no_secret_values_and_uses_an_external_kafka_over_sasl_ssl(
    rendered: dict[str, str],
) -> None:
    docs = documents(rendered["prod"])
    [config] = find(docs, "ConfigMap", "kafkaml-config")
    [ingress] = find(docs, "Ingress", "kafkaml")

    assert find(docs, "Secret") == []
    assert find(docs, "StatefulSet", "kafkaml-kafka") == []
    assert config["data"]["KAFKAML_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["kafkaml.example.com"], "secretName": "kafkaml-tls"}
    ]


def test_gpu_overlay_pins_gpu_training_to_gpu_nodes(rendered: dict[str, str]) -> None:
    [config] = find(documents(rendered["gpu"]), "ConfigMap", "kafkaml-backend-config")

    assert config["data"]["KAFKAML_K8S_GPU_NODE_SELECTOR"] == "nvidia.com/gpu.present=true"


def test_dev_overlay_runs_in_its_own_namespace_with_dev_images(rendered: dict[str, str]) -> None:
    docs = documents(rendered["dev"])
    namespaced = [doc for doc in docs if doc["kind"] != "Namespace"]
    images = {
        container["image"]
        for _, spec in pod_specs(docs)
        for container in spec["containers"]
        if "ghcr.io/kafkaml" in container["image"]
    }

    assert {doc["metadata"]["namespace"] for doc in namespaced} == {"kafkaml-dev"}
    assert {image.rsplit(":", 1)[1] for image in images} == {"dev"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runner_settings_of_each_overlay_build_valid_gpu_jobs_and_inferences(
    overlay: str, rendered: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    [config] = find(documents(rendered[overlay]), "ConfigMap", "kafkaml-backend-config")
    runner_keys = {key for key in config["data"] if key.startswith("KAFKAML_K8S_")}
    known = {f"KAFKAML_K8S_{name.upper()}" for name in KubernetesRunnerSettings.model_fields}
    assert runner_keys <= known, runner_keys - known
    for key in runner_keys:
        monkeypatch.setenv(key, config["data"][key])
    settings = KubernetesRunnerSettings()

    job = settings.training_job(result_ids=[1], deployment_id=1, job_token="t", gpus=1)
    inference = settings.inference(inference_id=1, replicas=2, job_token="t")

    for body in (
        serialize(objects.build_training_job(job, settings.namespace)),
        serialize(objects.build_inference_deployment(inference, settings.namespace)),
    ):
        assert kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True) == "1.37"


@pytest.fixture(scope="module")
def federated_worker() -> str:
    return render("federated-worker")


def test_the_federated_worker_renders_the_same_with_kubectl_and_passes_strict_validation(
    federated_worker: str, tmp_path: Path
) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing"
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "federated-worker")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert documents(done.stdout) == documents(federated_worker)
    path = tmp_path / "federated-worker.yaml"
    path.write_text(federated_worker)
    validated = validate(path)
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_the_federated_worker_takes_its_credential_from_a_secret_in_a_hardened_pod(
    federated_worker: str,
) -> None:
    docs = documents(federated_worker)
    [(name, spec)] = pod_specs(docs)
    assert name == "kafkaml-federated-worker"
    assert spec["automountServiceAccountToken"] is False
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["enableServiceLinks"] is False
    [container] = spec["containers"]
    assert container["command"] == ["python", "-m", "model_training.federated"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "memory" in container["resources"]["limits"]
    [credential] = [e for e in container["env"] if e["name"] == "KAFKAML_WORKER_CREDENTIAL"]
    assert credential["valueFrom"]["secretKeyRef"]["name"] == "kafkaml-federated-worker"
    assert not find(docs, "Secret"), "the credential is the data owner's: never shipped"
    [config] = find(docs, "ConfigMap")
    assert set(config["data"]) <= set(known_settings()), "every key is a setting a reader has"
    assert "KAFKAML_WORKER_CREDENTIAL" not in config["data"]
    [policy] = find(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"] == []
