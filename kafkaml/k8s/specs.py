"""Plain typed descriptions of the workloads the Kubernetes runner starts.

The backend fills these from its models; the runner turns them into Kubernetes objects. Nothing
here knows Django. Every spec validates itself on construction and raises `SpecError` naming the
field, so a bad value never reaches the API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kafkaml.k8s.errors import SpecError

# Environment variables the runner sets itself; a spec's `env` may not override them.
RESERVED_ENV = frozenset(
    {
        "KAFKAML_JOB_TOKEN",
        "KAFKAML_RESULT_IDS",
        "KAFKAML_DEPLOYMENT_ID",
        "KAFKAML_INFERENCE_ID",
        "KAFKAML_INFERENCE_METRICS_PORT",
    }
)

# A Kubernetes resource quantity: "500m", "2", "1.5", "4Gi", "1e3".
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$")
# A label key: optional DNS subdomain prefix and a name of up to 63 characters.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# DNS-1123 subdomain, the rule for Secret and ConfigMap names.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class WorkloadKind(StrEnum):
    """What a workload runs: the training of result(s) or the replicas of an inference."""

    RESULT = "result"
    INFERENCE = "inference"


@dataclass(frozen=True)
class Resources:
    """Container resources. No CPU limit by default: CFS throttling slows training for nothing."""

    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    cpu_limit: str | None = None
    memory_limit: str = "4Gi"
    gpus: int = 0

    def __post_init__(self) -> None:
        quantities = {
            "cpu_request": self.cpu_request,
            "memory_request": self.memory_request,
            "cpu_limit": self.cpu_limit,
            "memory_limit": self.memory_limit,
        }
        for name, value in quantities.items():
            if value is not None and not _QUANTITY.match(value):
                raise SpecError(f"{value!r} is not a Kubernetes quantity", field=name)
        _require(self.gpus >= 0, "must be 0 or more", field="gpus")


@dataclass(frozen=True)
class HttpProbe:
    """An HTTP GET the kubelet sends to a replica to decide whether it is alive and ready.

    The replica is told to serve its Prometheus metrics on `port` (KAFKAML_INFERENCE_METRICS_PORT).
    """

    path: str = "/metrics"
    port: int = 9100
    period_seconds: int = 10
    failure_threshold: int = 3

    def __post_init__(self) -> None:
        _require(self.path.startswith("/"), "must start with '/'", field="probe.path")
        _require(0 < self.port < 65536, "must be a TCP port", field="probe.port")
        _require(self.period_seconds > 0, "must be positive", field="probe.period_seconds")
        _require(self.failure_threshold > 0, "must be positive", field="probe.failure_threshold")


@dataclass(frozen=True)
class PodOptions:
    """What both kinds of workload share: image, environment, resources, service account.

    Secrets in `env_from_secrets` are optional (a cluster without Kafka credentials has none).
    """

    image: str
    env: Mapping[str, str] = field(default_factory=dict)
    env_from_config_maps: tuple[str, ...] = ()
    env_from_secrets: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    service_account_name: str | None = None
    image_pull_policy: str = "IfNotPresent"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # The only writable places of a job pod (its root file system is read-only): emptyDirs whose
    # size limits bound what user code can write; beyond one, the kubelet evicts the pod.
    scratch_size_limit: str = "10Gi"
    tmp_size_limit: str = "1Gi"
    # A Secret with the Kafka brokers' CA certificate (key ca.crt), mounted read-only.
    kafka_ca_secret: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("scratch_size_limit", self.scratch_size_limit),
                            ("tmp_size_limit", self.tmp_size_limit)):  # fmt: skip
            _require(bool(_QUANTITY.match(value)), f"{value!r} is not a Kubernetes quantity", name)
        if self.kafka_ca_secret is not None:
            _require(
                bool(_OBJECT_NAME.match(self.kafka_ca_secret)),
                f"{self.kafka_ca_secret!r} is not an object name",
                "kafka_ca_secret",
            )
            _require(
                "KAFKAML_KAFKA_SSL_CA_LOCATION" not in self.env,
                "KAFKAML_KAFKA_SSL_CA_LOCATION is set by the runner with kafka_ca_secret",
                "env",
            )
        _require(bool(self.image.strip()), "must name an image", field="image")
        for name in self.env:
            _require(bool(_ENV_NAME.match(name)), f"{name!r} is not a variable name", field="env")
            _require(name not in RESERVED_ENV, f"{name} is set by the runner", field="env")
        for name in (*self.env_from_config_maps, *self.env_from_secrets):
            _require(bool(_OBJECT_NAME.match(name)), f"{name!r} is not an object name", "env_from")
        for key in self.node_selector:
            _require(bool(_LABEL_KEY.match(key)), f"{key!r} is not a label key", "node_selector")
        allowed = ("Always", "IfNotPresent", "Never")
        _require(
            self.image_pull_policy in allowed, f"must be one of {allowed}", "image_pull_policy"
        )


@dataclass(frozen=True)
class TrainingJobSpec:
    """One training Job: the result(s) it trains (several for a distributed chain).

    `job_token` is the bearer token scoped to these results (one token, or comma-separated tokens
    in `result_ids` order, as model_training reads KAFKAML_JOB_TOKEN); the runner stores it in a
    Secret owned by the Job and hands it to the container as KAFKAML_JOB_TOKEN.
    """

    result_ids: tuple[int, ...]
    deployment_id: int
    job_token: str = field(repr=False)
    pod: PodOptions
    backoff_limit: int = 0
    ttl_seconds_after_finished: int = 3600
    active_deadline_seconds: int | None = None

    def __post_init__(self) -> None:
        _require(len(self.result_ids) > 0, "needs at least one result", field="result_ids")
        _require(all(i > 0 for i in self.result_ids), "ids must be positive", field="result_ids")
        _require(len(set(self.result_ids)) == len(self.result_ids), "duplicate id", "result_ids")
        _require(self.deployment_id > 0, "must be positive", field="deployment_id")
        _require(bool(self.job_token), "must not be empty", field="job_token")
        _require(self.backoff_limit >= 0, "must be 0 or more", field="backoff_limit")
        _require(self.ttl_seconds_after_finished >= 0, "must be 0 or more", "ttl_seconds")
        deadline = self.active_deadline_seconds
        _require(deadline is None or deadline > 0, "must be positive", "active_deadline_seconds")


@dataclass(frozen=True)
class InferenceSpec:
    """One inference: a Deployment of `replicas` identical consumers of the input topic."""

    inference_id: int
    replicas: int
    job_token: str = field(repr=False)
    pod: PodOptions
    probe: HttpProbe | None = field(default_factory=HttpProbe)
    # Enough for an exactly-once replica to abort its transaction and leave the group cleanly.
    termination_grace_period_seconds: int = 60

    def __post_init__(self) -> None:
        _require(self.inference_id > 0, "must be positive", field="inference_id")
        _require(self.replicas >= 0, "must be 0 or more", field="replicas")
        _require(bool(self.job_token), "must not be empty", field="job_token")
        grace = self.termination_grace_period_seconds
        _require(grace >= 0, "must be 0 or more", field="termination_grace_period_seconds")


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def quantity_bytes(quantity: str) -> int:
    """A memory quantity ("4Gi", "512M", "1e9", "3000000") in bytes, rounded down.

    Raises SpecError for text that is not a Kubernetes quantity.
    """
    if not _QUANTITY.match(quantity):
        raise SpecError(f"{quantity!r} is not a Kubernetes quantity", field="quantity")
    for suffixes in (_BINARY, _DECIMAL):
        for suffix, factor in suffixes.items():
            if quantity.endswith(suffix):
                return int(float(quantity.removesuffix(suffix)) * factor)
    if quantity.endswith("m"):
        return int(float(quantity[:-1]) / 1000)
    return int(float(quantity))


def _require(condition: bool, message: str, field: str) -> None:
    if not condition:
        raise SpecError(message, field=field)
