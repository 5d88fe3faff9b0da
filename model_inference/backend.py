"""The calls of the backend's job API that an inference replica makes.

The replica authenticates with the token scoped to its inference (`Authorization: Bearer`).
Transient failures (connection errors, 502/503/504) are retried a few times with backoff;
anything else becomes a `BackendError` carrying the backend's `{"message", "extra"}` body.
"""

from __future__ import annotations

from typing import Any

from kafkaml.rest import BackendError, RestClient, Retries

# The HTTP header of an artifact response; the Kafka record header that carries the version is
# `kafkaml.protocol.answers.MODEL_VERSION_HEADER`.
MODEL_VERSION_HTTP_HEADER = "X-Model-Version"

# Four retries, 0.5, 1, 2 and 4 s apart: a backend restart is waited out, a dead one is not.
RETRIES = Retries(count=4, backoff_s=0.5, statuses=frozenset({502, 503, 504}))


class JobApiClient:
    """Calls `/api/jobs/inferences/...` of one backend with one job token."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self._rest = RestClient(base_url, token, timeout_s=timeout_s, retries=RETRIES)

    def inference_spec(self, inference_id: int) -> dict[str, Any]:
        """The JSON spec of an inference. Raises BackendError."""
        value = self._rest.get_json(f"/api/jobs/inferences/{inference_id}/spec")
        if not isinstance(value, dict):
            raise BackendError(f"the spec of inference {inference_id} is not a JSON object")
        return value

    def inference_artifact(self, inference_id: int) -> tuple[bytes, str]:
        """The artifact bytes of the inference's current model and their model version.

        Raises BackendError, also when the response lacks the X-Model-Version header.
        """
        response = self._rest.request("GET", f"/api/jobs/inferences/{inference_id}/artifact")
        version = response.headers.get(MODEL_VERSION_HTTP_HEADER)
        if version is None:
            raise BackendError(
                f"the artifact of inference {inference_id} came without {MODEL_VERSION_HTTP_HEADER}"
            )
        return response.content, version

    def close(self) -> None:
        self._rest.close()


__all__ = ["MODEL_VERSION_HTTP_HEADER", "BackendError", "JobApiClient"]
