"""HTTP client of the backend's job API, the part an inference replica uses.

The replica authenticates with the token scoped to its inference (`Authorization: Bearer`).
Transient failures (connection errors, 502/503/504) are retried a few times with backoff;
anything else becomes a `BackendError` carrying the backend's `{"message", "extra"}` body.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

MODEL_VERSION_HEADER = "X-Model-Version"


class BackendError(RuntimeError):
    """The backend refused a request or could not be reached."""

    def __init__(
        self, message: str, *, status: int | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}


class JobApiClient:
    """Calls `/api/jobs/...` of one backend with one job token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        retry = Retry(
            total=4,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        self._session.mount("http://", HTTPAdapter(max_retries=retry))
        self._session.mount("https://", HTTPAdapter(max_retries=retry))

    def inference_spec(self, inference_id: int) -> dict[str, Any]:
        """The JSON spec of an inference. Raises BackendError."""
        response = self._get(f"/api/jobs/inferences/{inference_id}/spec")
        try:
            value = response.json()
        except ValueError as error:
            raise BackendError(f"the spec of inference {inference_id} is not JSON") from error
        if not isinstance(value, dict):
            raise BackendError(f"the spec of inference {inference_id} is not a JSON object")
        return value

    def inference_artifact(self, inference_id: int) -> tuple[bytes, str]:
        """The artifact bytes of the inference's current model and their model version.

        Raises BackendError, also when the response lacks the X-Model-Version header.
        """
        response = self._get(f"/api/jobs/inferences/{inference_id}/artifact")
        version = response.headers.get(MODEL_VERSION_HEADER)
        if version is None:
            raise BackendError(
                f"the artifact of inference {inference_id} came without {MODEL_VERSION_HEADER}"
            )
        return response.content, version

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str) -> requests.Response:
        url = f"{self._base_url}{path}"
        try:
            response = self._session.get(url, timeout=self._timeout_s)
        except requests.RequestException as error:
            raise BackendError(f"GET {url} failed: {error}") from error
        if response.status_code >= 400:
            raise _error_from(response, url)
        return response


def _error_from(response: requests.Response, url: str) -> BackendError:
    """A BackendError from the backend's uniform error body, or the bare status."""
    message, extra = f"GET {url} answered {response.status_code}", dict[str, Any]()
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = f"{message}: {body['message']}"
        if isinstance(body.get("extra"), dict):
            extra = body["extra"]
    return BackendError(message, status=response.status_code, extra=extra)
