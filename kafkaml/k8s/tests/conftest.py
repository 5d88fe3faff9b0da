"""A Kubernetes API emulator (kmock) on real HTTP, for the synchronous kubernetes client.

kmock is asyncio-based and the official client is blocking, so the emulator runs its own event
loop in a background thread and the tests talk to it over loopback HTTP like to an API server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import kmock
import pytest
from kubernetes import client
from kubernetes.client import ApiClient, Configuration

from kafkaml.k8s.specs import (
    HttpProbe,
    InferenceSpec,
    PodOptions,
    Resources,
    TrainingJobSpec,
)

T = TypeVar("T")

NAMESPACE = "kafkaml"
# Resources a fresh cluster serves even when empty (kmock otherwise knows only stored kinds).
RESOURCES = ("batch/v1/jobs", "apps/v1/deployments", "v1/pods", "v1/secrets")


class EmulatedApiServer:
    """A kmock KubernetesEmulator listening on 127.0.0.1, driven from a background loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stack = AsyncExitStack()
        self.emulator: kmock.KubernetesEmulator

    def __enter__(self) -> EmulatedApiServer:
        self._thread.start()
        self.emulator = self.call(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.call(self._drop_connections())
        self.call(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> kmock.KubernetesEmulator:
        emulator = await self._stack.enter_async_context(kmock.KubernetesEmulator())
        for resource in RESOURCES:
            emulator.resources[resource] = kmock.ResourceInfo(namespaced=True)
        self.server = await self._stack.enter_async_context(kmock.Server(emulator))
        return emulator

    async def _drop_connections(self) -> None:
        """Close every client connection, so no request is still being served at shutdown.

        A watch that a test's reconciler left (its read timed out) is a request in progress to
        aiohttp, which then waits for it to end before it stops (seen: over 90 s).
        """
        managed: Any = self.server._managed_server  # kmock exposes no handle to its aiohttp server
        if managed is not None and managed.runner is not None:
            for connection in list(managed.runner.server.connections):
                connection.force_close()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the emulator's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def api_client(self) -> ApiClient:
        configuration = Configuration(host=str(self.server.url).rstrip("/"))
        return ApiClient(configuration)

    def requests(self, *criteria: Any) -> list[kmock.Request]:
        """The requests the emulator received so far that match all `criteria` (kmock filters)."""
        view: Any = self.emulator
        for criterion in criteria:
            view = view[criterion]
        return list(view)

    def stored(self, resource: str, name: str) -> dict[str, Any]:
        """The object the emulator currently holds (raises KeyError when there is none)."""
        obj = self.emulator.objects[kmock.resource(resource), NAMESPACE, name]
        if obj.deleted:
            raise KeyError(name)
        return dict(obj.raw)


@pytest.fixture
def apiserver() -> Iterator[EmulatedApiServer]:
    with EmulatedApiServer() as server:
        yield server


@pytest.fixture
def api_client(apiserver: EmulatedApiServer) -> Iterator[ApiClient]:
    client = apiserver.api_client()
    yield client
    close: Callable[[], None] = client.close  # untyped in the client library
    close()


def serialize(obj: Any) -> dict[str, Any]:
    """`obj` as JSON-ready data, exactly as the kubernetes client sends it."""
    sanitize: Callable[[Any], dict[str, Any]] = ApiClient().sanitize_for_serialization
    return sanitize(obj)


def training_spec(**overrides: Any) -> TrainingJobSpec:
    values: dict[str, Any] = {
        "result_ids": (7, 8),
        "deployment_id": 3,
        "job_token": "token-for-7-and-8",
        "pod": PodOptions(
            image="ghcr.io/kafkaml/model-training:0.1.0",
            env={"KAFKAML_BACKEND_URL": "http://kafkaml-backend:8000"},
            env_from_config_maps=("kafkaml-config",),
            env_from_secrets=("kafkaml-kafka",),
            resources=Resources(cpu_request="1", memory_request="2Gi", memory_limit="3Gi"),
        ),
    }
    values.update(overrides)
    return TrainingJobSpec(**values)


def inference_spec(**overrides: Any) -> InferenceSpec:
    values: dict[str, Any] = {
        "inference_id": 5,
        "replicas": 3,
        "job_token": "token-for-inference-5",
        "pod": PodOptions(image="ghcr.io/kafkaml/model-inference:0.1.0"),
        "probe": HttpProbe(path="/metrics", port=9100),
    }
    values.update(overrides)
    return InferenceSpec(**values)


# The controllers and the kubelet, played through the API: kmock stores and serves objects (list,
# watch, the status and scale subresources) but runs no controller, so nothing creates pods or
# writes their status unless a test does. It also ignores label selectors (a list returns every
# object of the kind) and does not garbage-collect owned objects.


def create_pod(
    api_client: ApiClient, name: str, labels: dict[str, str], annotations: dict[str, str]
) -> None:
    """A pod as the Job or ReplicaSet controller creates it from the workload's template."""
    body: Any = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "worker", "image": "kafkaml"}]},
    }
    client.CoreV1Api(api_client).create_namespaced_pod(NAMESPACE, body)


def report_container(
    api_client: ApiClient,
    pod_name: str,
    *,
    ready: bool,
    restarts: int,
    state: dict[str, Any],
    last_exit: dict[str, Any] | None = None,
) -> None:
    """What the kubelet writes to a pod's status: its Ready condition and its one container's
    state, restart count and last termination (kmock restarts nothing by itself)."""
    container: dict[str, Any] = {
        "name": "worker",
        "image": "kafkaml",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last_exit} if last_exit else {},
    }
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    body = {
        "status": {"phase": "Running", "conditions": [condition], "containerStatuses": [container]}
    }
    client.CoreV1Api(api_client).patch_namespaced_pod_status(pod_name, NAMESPACE, body)


def oom_kill(api_client: ApiClient, pod_name: str, *, restarts: int = 1) -> None:
    """What the kubelet reports after the kernel killed the container for its memory and the
    container waits out its restart backoff."""
    report_container(
        api_client,
        pod_name,
        ready=False,
        restarts=restarts,
        state={"waiting": {"reason": "CrashLoopBackOff"}},
        last_exit={"reason": "OOMKilled", "exitCode": 137},
    )
