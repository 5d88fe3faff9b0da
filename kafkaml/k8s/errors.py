"""Named errors of the Kubernetes runner, so callers never see a raw ApiException."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class RunnerError(Exception):
    """Base of every error the Kubernetes runner raises."""


class SpecError(RunnerError, ValueError):
    """A workload spec is invalid; `field` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class RunnerPermissionError(RunnerError):
    """The API server refused the call (403): the service account lacks a permission."""

    def __init__(self, message: str, *, verb: str, resource: str) -> None:
        super().__init__(f"not allowed to {verb} {resource}: {message}")
        self.verb = verb
        self.resource = resource


class WorkloadNotFoundError(RunnerError):
    """No Job, Deployment or pod exists for the requested training result or inference."""

    def __init__(self, kind: str, object_id: int, what: str) -> None:
        super().__init__(f"no {what} found for {kind} {object_id}")
        self.kind = kind
        self.object_id = object_id


class WorkloadTerminatingError(RunnerError):
    """A Job or Deployment of the same name is still being deleted; start again once it is gone."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(
            f"{resource} {name} is still being deleted; start it again once it is gone"
        )
        self.resource = resource
        self.name = name


class KubernetesApiError(RunnerError):
    """Any other failed API call, with the HTTP status and the server's message."""

    def __init__(self, message: str, *, status: int, verb: str, resource: str) -> None:
        super().__init__(f"{verb} {resource} failed with HTTP {status}: {message}")
        self.status = status
        self.verb = verb
        self.resource = resource


def api_error(error: ApiException, verb: str, resource: str) -> RunnerError:
    """The named error for a failed API call, carrying the API server's own message."""
    message = server_message(error)
    if error.status == 403:
        return RunnerPermissionError(message, verb=verb, resource=resource)
    return KubernetesApiError(message, status=int(error.status or 0), verb=verb, resource=resource)


def server_message(error: ApiException) -> str:
    # The API server answers a Status object; its `message` is the useful part.
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.reason or error.body or "no details")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.reason or "no details")
