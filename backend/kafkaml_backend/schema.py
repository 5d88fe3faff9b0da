"""OpenAPI descriptions of kafkaml's own authentication schemes (loaded by urls.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class _BearerScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
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
