"""The Python client of kafkaml's REST API, for people who script the platform.

    from kafkaml.client import Client

    client = Client("http://127.0.0.1:8000", username="admin", password="...")
    model = client.models.create(name="net", framework="pytorch", code=open("net.py").read())
    configuration = client.configurations.create(name="one", model_ids=[model.id])
    deployment = client.deployments.create(configuration.id, batch_size=32, epochs=5)
    # ... stream the data with a sink (kafkaml.datasources) for deployment.id ...
    result = client.results.wait(deployment.result_ids[0], timeout_s=600)
    client.results.download(result.id, "net.onnx", artifact_format="onnx")

Every call returns typed records (`kafkaml.client.types`) and raises `KafkamlError` (the API's
message and `extra`) for anything that did not succeed. The HTTP layer is the workers' own
`kafkaml.rest.RestClient`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from kafkaml.client.errors import KafkamlError
from kafkaml.client.predictions import (
    Prediction,
    PredictionReader,
    send_inputs,
    unique_keys,
)
from kafkaml.client.settings import ClientSettings
from kafkaml.client.types import (
    Configuration,
    Datasource,
    Deployment,
    FederatedWorker,
    Inference,
    InferenceDefaults,
    Logs,
    Model,
    Result,
    User,
    parse,
)
from kafkaml.kafka import KafkaSettings
from kafkaml.rest import BackendError, BackendTimeout, RestClient

T = TypeVar("T")
ARTIFACT_SUFFIX = {"keras": "keras", "pytorch": "pt", "onnx": "onnx"}
# What a create call that timed out advises (the request may still complete on the server).
_LIST_MODELS = "Look for it in `kafkaml models list` before creating it again."
_LIST_RESULTS = "Look for it in `kafkaml results list` before importing it again."
_LIST_DEPLOYMENTS = "Look for it in `kafkaml deployments list` before deploying again."


class _Api:
    """The requests every resource makes, their errors turned into KafkamlError.

    A call given `slow` runs model code on the backend before it answers (the executor's dry
    runs): it waits `create_timeout_s`, and `slow` says what to do when even that runs out.
    """

    def __init__(self, rest: RestClient, create_timeout_s: float) -> None:
        self.rest = rest
        self.create_timeout_s = create_timeout_s

    def request(self, method: str, path: str, slow: str | None, **kwargs: Any) -> Any:
        timeout_s = self.create_timeout_s if slow else None
        try:
            return self.rest.request(method, path, timeout_s=timeout_s, **kwargs)
        except BackendTimeout as error:
            setting = "KAFKAML_CLIENT_CREATE_TIMEOUT_S" if slow else "KAFKAML_CLIENT_TIMEOUT_S"
            advice = f" {slow}" if slow else ""
            raise KafkamlError(
                f"{error.reason}.{advice} {setting} sets how long to wait."
            ) from error
        except BackendError as error:
            raise KafkamlError.from_backend(error) from error

    def call(self, method: str, path: str, *, slow: str | None = None, **kwargs: Any) -> Any:
        response = self.request(method, path, slow, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise KafkamlError(f"{method} {path} answered no JSON document") from error

    def one(self, cls: type[T], method: str, path: str, **kwargs: Any) -> T:
        return parse(cls, self.call(method, path, **kwargs))

    def many(self, cls: type[T], path: str, **kwargs: Any) -> builtins.list[T]:
        return [parse(cls, item) for item in self.call("GET", path, **kwargs)]

    def raw(self, path: str, *, slow: str | None = None, **kwargs: Any) -> bytes:
        return bytes(self.request("GET", path, slow, **kwargs).content)


class Models:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[Model]:
        return self._api.many(Model, "/api/models")

    def get(self, model_id: int) -> Model:
        return self._api.one(Model, "GET", f"/api/models/{model_id}")

    def create(
        self,
        *,
        name: str,
        framework: str,
        code: str,
        imports: str = "",
        description: str = "",
        distributed: bool = False,
        upper_id: int | None = None,
    ) -> Model:
        """Validate the code in the executor and store it; KafkamlError carries the line."""
        body = {
            "name": name, "framework": framework, "code": code, "imports": imports,
            "description": description, "distributed": distributed, "upper_id": upper_id,
        }  # fmt: skip
        return self._api.one(Model, "POST", "/api/models", json=body, slow=_LIST_MODELS)

    def update(self, model_id: int, **changes: Any) -> Model:
        slow = f"See whether it changed (`kafkaml models show {model_id}`) before sending it again."
        return self._api.one(Model, "PATCH", f"/api/models/{model_id}", json=changes, slow=slow)

    def import_artifact(
        self,
        artifact: bytes,
        *,
        name: str,
        framework: str,
        artifact_format: str,
        code: str = "",
        imports: str = "",
        description: str = "",
    ) -> Result:
        """Import a model trained elsewhere (a Keras `.keras`, a PyTorch state dict with the
        model `code` that builds it, or ONNX); it becomes a finished result to serve. The
        executor checks it first: KafkamlError names what is wrong with it."""
        form = {
            "name": name, "framework": framework, "artifact_format": artifact_format,
            "code": code, "imports": imports, "description": description,
        }  # fmt: skip
        files = {"artifact": (f"{name}.{ARTIFACT_SUFFIX[artifact_format]}", artifact)}
        return self._api.one(
            Result, "POST", "/api/models/import", data=form, files=files, slow=_LIST_RESULTS
        )

    def delete(self, model_id: int) -> None:
        self._api.call("DELETE", f"/api/models/{model_id}")


class Configurations:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[Configuration]:
        return self._api.many(Configuration, "/api/configurations")

    def get(self, configuration_id: int) -> Configuration:
        return self._api.one(Configuration, "GET", f"/api/configurations/{configuration_id}")

    def create(
        self, *, name: str, model_ids: Sequence[int], description: str = ""
    ) -> Configuration:
        """A configuration of the models (a distributed chain's top model brings the chain)."""
        body = {"name": name, "description": description, "ml_model_ids": list(model_ids)}
        return self._api.one(Configuration, "POST", "/api/configurations", json=body)

    def delete(self, configuration_id: int) -> None:
        self._api.call("DELETE", f"/api/configurations/{configuration_id}")


class Deployments:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[Deployment]:
        return self._api.many(Deployment, "/api/deployments")

    def get(self, deployment_id: int) -> Deployment:
        return self._api.one(Deployment, "GET", f"/api/deployments/{deployment_id}")

    def create(
        self,
        configuration_id: int,
        *,
        batch_size: int,
        epochs: int | None = None,
        mode: str = "classic",
        fit_kwargs: dict[str, Any] | None = None,
        eval_kwargs: dict[str, Any] | None = None,
        description: str = "",
        gpus: int = 0,
        confusion_matrix: bool = False,
        options: dict[str, Any] | None = None,
        target: str = "label",
    ) -> Deployment:
        """Deploy a configuration for training: one result (one job) per model or chain.

        `epochs` is a shorthand for `fit_kwargs["epochs"]` (Keras) or `["max_epochs"]`
        (Ignite: give it in `fit_kwargs`). `options` are the chosen mode's options
        (e.g. `{"stream_timeout_ms": 5000}` for incremental). `target` "input" trains the
        models to reproduce their input (autoencoders) instead of the record's label.
        """
        fit = dict(fit_kwargs or {})
        if epochs is not None:
            fit.setdefault("epochs", epochs)
        body: dict[str, Any] = {
            "configuration_id": configuration_id, "batch_size": batch_size, "mode": mode,
            "fit_kwargs": fit, "eval_kwargs": eval_kwargs or {}, "description": description,
            "gpus": gpus, "confusion_matrix": confusion_matrix, "target": target,
        }  # fmt: skip
        if options is not None:  # mode "semi-supervised" has its options in "semi_supervised"
            body[mode.replace("-", "_")] = options
        return self._api.one(
            Deployment, "POST", "/api/deployments", json=body, slow=_LIST_DEPLOYMENTS
        )

    def results(self, deployment_id: int) -> builtins.list[Result]:
        return self._api.many(Result, f"/api/deployments/{deployment_id}/results")

    def delete(self, deployment_id: int) -> None:
        self._api.call("DELETE", f"/api/deployments/{deployment_id}")


class Results:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[Result]:
        return self._api.many(Result, "/api/results")

    def get(self, result_id: int) -> Result:
        return self._api.one(Result, "GET", f"/api/results/{result_id}")

    def stop(self, result_id: int) -> Result:
        return self._api.one(Result, "POST", f"/api/results/{result_id}/stop")

    def delete(self, result_id: int) -> None:
        self._api.call("DELETE", f"/api/results/{result_id}")

    def logs(self, result_id: int) -> Logs:
        return self._api.one(Logs, "GET", f"/api/results/{result_id}/logs")

    def inference_defaults(self, result_id: int) -> InferenceDefaults:
        path = f"/api/results/{result_id}/inference-defaults"
        return self._api.one(InferenceDefaults, "GET", path)

    def wait(
        self,
        result_id: int,
        *,
        timeout_s: float = 3600.0,
        interval_s: float = 1.0,
        progress: Callable[[Result], None] | None = None,
    ) -> Result:
        """The result once finished, failed or stopped (check `status`: a failed result is
        returned, not raised). `progress` is called with each new state seen (status or epoch
        count changed). Raises KafkamlError when `timeout_s` passes first."""
        return _wait(
            lambda: self.get(result_id), lambda r: (r.status, len(r.epochs or [])),
            f"result {result_id}", timeout_s, interval_s, progress,
        )  # fmt: skip

    def artifact(self, result_id: int, *, artifact_format: str = "native") -> bytes:
        """The trained model's bytes: `native` (.keras or PyTorch state_dict) or `onnx`
        (converted once by the backend's executor and kept). Raises KafkamlError when the
        result has no trained model yet or cannot be converted."""
        params = {"artifact_format": artifact_format} if artifact_format != "native" else None
        slow = None if params is None else "Asking again is safe: a finished conversion is kept."
        return self._api.raw(f"/api/results/{result_id}/artifact", params=params, slow=slow)

    def download(
        self, result_id: int, path: str | Path | None = None, *, artifact_format: str = "native"
    ) -> Path:
        """Write the artifact to `path` (default: `<model>-<id>.<suffix>` here); its path."""
        content = self.artifact(result_id, artifact_format=artifact_format)
        if path is None:
            result = self.get(result_id)
            fmt = result.artifact_format if artifact_format == "native" else artifact_format
            path = f"{result.model_name}-{result.id}.{ARTIFACT_SUFFIX.get(fmt, fmt)}"
        target = Path(path)
        target.write_bytes(content)
        return target


class Datasources:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self, *, deployment_id: int | None = None) -> list[Datasource]:
        params = {"deployment_id": deployment_id} if deployment_id is not None else None
        return self._api.many(Datasource, "/api/datasources", params=params)

    def get(self, datasource_id: int) -> Datasource:
        return self._api.one(Datasource, "GET", f"/api/datasources/{datasource_id}")

    def replay(self, datasource_id: int, *, deployment_id: int) -> None:
        """Announce the recorded stream again for another deployment (its data is reread
        from Kafka, so it must still be retained there)."""
        path = f"/api/datasources/{datasource_id}/replay"
        self._api.call("POST", path, json={"deployment_id": deployment_id})


class FederatedWorkers:
    """Data owners' workers for federated deployments (docs/federated.md)."""

    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[FederatedWorker]:
        return self._api.many(FederatedWorker, "/api/federated/workers")

    def get(self, worker_pk: int) -> FederatedWorker:
        return self._api.one(FederatedWorker, "GET", f"/api/federated/workers/{worker_pk}")

    def create(
        self, name: str, datasets: builtins.list[dict[str, Any]]
    ) -> tuple[FederatedWorker, str]:
        """Register a worker; it and its credential, which the API never shows again.

        Each dataset: `name`, `input_shape` (one sample's, no batch dimension),
        `dataset_restrictions` (object), `samples` (training samples it holds).
        """
        body = self._api.call("POST", "/api/federated/workers",
                              json={"name": name, "datasets": datasets})  # fmt: skip
        return parse(FederatedWorker, body), str(body["credential"])

    def revoke(self, worker_pk: int) -> None:
        """Revoke the worker's credential at once (its row stays, with `revoked_at`)."""
        self._api.call("DELETE", f"/api/federated/workers/{worker_pk}")


class Inferences:
    def __init__(self, api: _Api) -> None:
        self._api = api

    def list(self) -> list[Inference]:
        return self._api.many(Inference, "/api/inferences")

    def get(self, inference_id: int) -> Inference:
        return self._api.one(Inference, "GET", f"/api/inferences/{inference_id}")

    def create(
        self,
        result_id: int,
        *,
        input_topic: str,
        output_topic: str,
        replicas: int = 1,
        input_format: str | None = None,
        input_config: dict[str, Any] | None = None,
        upper_topic: str = "",
        limit: float | None = None,
        input_bootstrap: str = "",
        output_bootstrap: str = "",
        upper_bootstrap: str = "",
        delivery: str = "exactly-once",
    ) -> Inference:
        """Serve a finished result. Format and config default to the result's training
        datasource (`results.inference_defaults`). `delivery`: `exactly-once` (transactions,
        read with read_committed) or `at-least-once` (for consumers that cannot skip
        transaction markers)."""
        if input_format is None or input_config is None:
            defaults = Results(self._api).inference_defaults(result_id)
            input_format = input_format or defaults.input_format
            input_config = defaults.input_config if input_config is None else input_config
        body = {
            "result_id": result_id, "replicas": replicas, "input_format": input_format,
            "input_config": input_config, "input_topic": input_topic,
            "output_topic": output_topic, "upper_topic": upper_topic, "limit": limit,
            "input_bootstrap": input_bootstrap, "output_bootstrap": output_bootstrap,
            "upper_bootstrap": upper_bootstrap, "delivery": delivery,
        }  # fmt: skip
        return self._api.one(Inference, "POST", "/api/inferences", json=body)

    def stop(self, inference_id: int) -> Inference:
        return self._api.one(Inference, "POST", f"/api/inferences/{inference_id}/stop")

    def delete(self, inference_id: int) -> None:
        self._api.call("DELETE", f"/api/inferences/{inference_id}")

    def scale(self, inference_id: int, replicas: int) -> Inference:
        path = f"/api/inferences/{inference_id}/scale"
        return self._api.one(Inference, "POST", path, json={"replicas": replicas})

    def swap(self, inference_id: int, result_id: int) -> Inference:
        """Serve another result's model without losing or repeating a record."""
        path = f"/api/inferences/{inference_id}/swap"
        return self._api.one(Inference, "POST", path, json={"result_id": result_id})

    def logs(self, inference_id: int) -> Logs:
        return self._api.one(Logs, "GET", f"/api/inferences/{inference_id}/logs")

    def visualize(
        self,
        inference_id: int,
        *,
        type: str,
        labels: builtins.list[dict[str, Any]],
        average_updated: bool = False,
        average_window: int = 10_000,
    ) -> dict[str, Any]:
        """Set how the web UI draws the inference's outputs live: `type` "classification" or
        "regression", `labels` `[{"id": output position, "color": "#rrggbb", "label": ...}]`;
        returns the stored configuration."""
        body = {"type": type, "labels": labels, "average_updated": average_updated,
                "average_window": average_window}  # fmt: skip
        answer: dict[str, Any] = self._api.call(
            "PUT", f"/api/inferences/{inference_id}/visualization", json=body
        )
        return answer

    def wait(
        self,
        inference_id: int,
        *,
        timeout_s: float = 300.0,
        interval_s: float = 0.5,
        progress: Callable[[Inference], None] | None = None,
    ) -> Inference:
        """The inference once its replicas run (status `running`) or once it failed or
        stopped; KafkamlError after `timeout_s`. Running replicas may still be joining their
        consumer group: answers to inputs sent now come once they have."""

        def fetch() -> Inference:
            return self.get(inference_id)

        return _wait(
            fetch, lambda i: i.status, f"inference {inference_id}", timeout_s, interval_s, progress
        )


class Client:
    """One user's session with the API: a token, or a user name and password exchanged for
    the user's token at once. `kafka` (or `bootstrap_servers`) is needed only by `predict`.

    A request waits `timeout_s` for its answer, a call that runs model code on the backend
    first (creating, changing or importing a model, deploying, an ONNX download)
    `create_timeout_s`; by default `settings`' (KAFKAML_CLIENT_TIMEOUT_S and
    KAFKAML_CLIENT_CREATE_TIMEOUT_S). A call that got no answer in time raises KafkamlError
    saying that the backend may still complete it, and what to look at before trying again.

    Raises KafkamlError when the credentials are refused or the backend cannot be reached.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float | None = None,
        create_timeout_s: float | None = None,
        settings: ClientSettings | None = None,
        bootstrap_servers: str | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        settings = settings or ClientSettings()
        self.url = url.rstrip("/")
        self._rest = RestClient(self.url, None, timeout_s=timeout_s or settings.timeout_s)
        self._api = _Api(self._rest, create_timeout_s or settings.create_timeout_s)
        if token is None:
            if username is None or password is None:
                raise KafkamlError("give a token, or a user name and a password")
            token = self._login(username, password)
        self.token = token
        self._rest.set_token(token, scheme="Token")
        self.kafka = kafka or (
            KafkaSettings(bootstrap_servers=bootstrap_servers) if bootstrap_servers else None
        )
        self.models = Models(self._api)
        self.configurations = Configurations(self._api)
        self.deployments = Deployments(self._api)
        self.results = Results(self._api)
        self.datasources = Datasources(self._api)
        self.inferences = Inferences(self._api)
        self.federated_workers = FederatedWorkers(self._api)

    def _login(self, username: str, password: str) -> str:
        """The user's API token, through a session login (CSRF token echoed as Django asks)."""
        self._api.call("POST", "/api/auth/login", json={"username": username, "password": password})
        csrf = self._rest.cookies.get("csrftoken", "")
        answer = self._api.call("POST", "/api/auth/token", headers={"X-CSRFToken": csrf})
        self._api.call("POST", "/api/auth/logout", headers={"X-CSRFToken": csrf})
        self._rest.cookies.clear()
        return str(answer["token"])

    def me(self) -> User:
        """The signed-in user; a cheap check that the credentials work."""
        return self._api.one(User, "GET", "/api/auth/me")

    def schema(self) -> dict[str, Any]:
        """The API's OpenAPI document."""
        document: dict[str, Any] = self._api.call("GET", "/api/schema/", params={"format": "json"})
        return document

    def predict(
        self,
        inference_id: int,
        rows: Any,
        *,
        timeout_s: float = 120.0,
        topics: Sequence[str] | None = None,
    ) -> builtins.list[Prediction]:
        """Send `rows` to the inference's input topic, one record each with a fresh unique
        key, and return each row's answer in the rows' order. `topics` are where answers are
        read (default: the inference's output topic; add an upper tier's output topic for an
        early-exit chain). Raises KafkamlError when an answer is missing after `timeout_s`."""
        if self.kafka is None:
            raise KafkamlError("predict needs the Kafka brokers: give bootstrap_servers")
        inference = self.inferences.get(inference_id)
        keys = unique_keys(len(rows))
        with PredictionReader(
            self.kafka.with_bootstrap(inference.output_bootstrap or None),
            topics or [inference.output_topic],
        ) as reader:
            send_inputs(
                self.kafka.with_bootstrap(inference.input_bootstrap or None),
                inference.input_topic,
                rows,
                keys,
                input_format=inference.input_format,
                input_config=inference.input_config,
            )
            return reader.read(keys, timeout_s=timeout_s)

    def close(self) -> None:
        self._rest.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait(
    fetch: Callable[[], T],
    state: Callable[[T], Any],
    what: str,
    timeout_s: float,
    interval_s: float,
    progress: Callable[[T], None] | None,
) -> T:
    deadline = time.monotonic() + timeout_s
    seen: Any = None
    while True:
        current = fetch()
        if progress is not None and state(current) != seen:
            progress(current)
        seen = state(current)
        if current.final:  # type: ignore[attr-defined]
            return current
        if time.monotonic() > deadline:
            raise KafkamlError(
                f"timed out after {timeout_s:g} s waiting for {what} (still {current.status})",  # type: ignore[attr-defined]
                extra={"status": current.status},  # type: ignore[attr-defined]
            )
        time.sleep(interval_s)  # polling the API; no push channel for status changes


__all__ = [
    "Client",
    "Configuration",
    "Datasource",
    "Deployment",
    "Inference",
    "InferenceDefaults",
    "KafkamlError",
    "Logs",
    "Model",
    "Prediction",
    "PredictionReader",
    "Result",
    "User",
    "send_inputs",
    "unique_keys",
]
