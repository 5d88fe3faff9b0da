"""`Authorization: Bearer <worker credential>`: a federated worker's own API calls."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from backend.apps.federated.models import FederatedWorker
from backend.apps.federated.selectors import worker_by_credential
from backend.kafkaml_backend.auth import bearer_credential
from kafkaml.federated import CredentialError, credential_worker_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerPrincipal:
    """The federated worker a request's credential belongs to (never a user)."""

    worker: FederatedWorker

    is_authenticated = True
    is_staff = False
    is_anonymous = False


class FederatedWorkerAuthentication(authentication.BaseAuthentication):
    """A worker credential that the backend issued and that has not been revoked."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[WorkerPrincipal, str] | None:
        credential = bearer_credential(request)
        if credential is None:
            return None
        try:
            worker = worker_by_credential(
                worker_id=credential_worker_id(credential), credential=credential
            )
        except CredentialError:
            worker = None
        if worker is None:
            raise exceptions.AuthenticationFailed("Not a federated worker credential.")
        if worker.revoked_at is not None:
            log.warning("refused revoked federated worker %s (%s)", worker.worker_id, worker.name)
            raise exceptions.AuthenticationFailed("This worker's credential has been revoked.")
        return WorkerPrincipal(worker), credential

    def authenticate_header(self, request: HttpRequest) -> str:
        return f'{self.keyword} realm="kafkaml-federated-workers"'


class FederatedWorkerScheme(OpenApiAuthenticationExtension):
    target_class = "backend.apps.federated.auth.FederatedWorkerAuthentication"
    name = "federatedWorkerCredential"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A federated worker's credential (POST /api/federated/workers).",
        }
