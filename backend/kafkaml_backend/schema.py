"""The OpenAPI document's own parts: kafkaml's authentication schemes (loaded by urls.py), and
the error responses every operation documents (`ErrorAutoSchema`, the DEFAULT_SCHEMA_CLASS)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class _BearerScheme(OpenApiAuthenticationExtension):
    description = ""

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": self.description}


class ResultJobTokenScheme(_BearerScheme):
    target_class = "backend.kafkaml_backend.auth.ResultJobAuthentication"
    name = "resultJobToken"
    description = "A signed job token scoped to one training result."


class InferenceJobTokenScheme(_BearerScheme):
    target_class = "backend.kafkaml_backend.auth.InferenceJobAuthentication"
    name = "inferenceJobToken"
    description = "A signed job token scoped to one inference."


class ServiceTokenScheme(_BearerScheme):
    target_class = "backend.kafkaml_backend.auth.ServiceAuthentication"
    name = "serviceToken"
    description = "A signed service token (the control logger's)."


class ErrorBody(serializers.Serializer[Any]):
    """Every error answer: a sentence for people and facts for programs."""

    message = serializers.CharField()
    extra = serializers.DictField(
        help_text="Facts about the error; a refused request body has its field errors under "
        "`fields` (`{field: [what is wrong]}`)."
    )


ERROR_DESCRIPTIONS = {
    400: "Invalid input: field errors under `extra.fields`, or a body that is not JSON or "
    "nests too deep.",
    401: "No credential, or one that is not valid here.",
    403: "The credential may not do this (another object's job token, an ended job, a login "
    "from a foreign Origin, a failed CSRF check).",
    404: "No such object, or it belongs to someone else.",
    409: "The object is not in a state that allows this (e.g. stopping a finished result, or "
    "a job token whose result or inference has ended); its status in `extra.status`.",
    413: "The request body is larger than the limit (`extra.limit_bytes`).",
    429: "Too many failed logins; `extra.retry_after_s` and the Retry-After header say when to "
    "try again.",
    503: "A service the backend needs (the model code executor, Kafka) did not answer.",
}

# Operations that call the model code executor or Kafka while the client waits.
SERVICE_OPERATIONS = {
    ("POST", "/api/models"),
    ("PATCH", "/api/models/{pk}"),
    ("POST", "/api/deployments"),
    ("POST", "/api/datasources/{pk}/replay"),
}


class ErrorAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error responses (`ErrorBody`) each operation can give:
    400 and 413 where a request body is read, 401 and 403 where a credential is needed, 404
    where an object is named, 409 for changes, 429 for the login, 503 for SERVICE_OPERATIONS."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._error_statuses():
            response = self._get_response_for_code(ErrorBody, str(code), direction=direction)  # type: ignore[no-untyped-call]  # unannotated in drf-spectacular
            response["description"] = ERROR_DESCRIPTIONS[code]
            # A view's own description of an error (e.g. "No artifact yet.") is kept.
            declared = responses.setdefault(str(code), response)
            declared.setdefault("content", response["content"])
        return responses

    def _error_statuses(self) -> list[int]:
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        has_body = self.method in ("POST", "PUT", "PATCH") and (
            self.get_request_serializer() is not None
        )
        codes = {400, 413} if has_body else set()
        if self.get_override_parameters():
            codes.add(400)
        if not public:
            codes |= {401, 403}
            if self.method in ("POST", "PUT", "PATCH", "DELETE"):
                codes |= {404, 409}
        if "{" in self.path:
            codes.add(404)
        if self.path.startswith(("/api/jobs/results/", "/api/jobs/inferences/")):
            codes.add(409)  # the job's result or inference has ended (jobs.apis.JobNotEnded)
        if self.get_operation_id() == "auth_login":
            codes |= {401, 403, 429}
        if (self.method, self.path) in SERVICE_OPERATIONS:
            codes.add(503)
        return sorted(codes)
