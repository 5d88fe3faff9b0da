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
