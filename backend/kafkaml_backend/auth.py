"""Credentials: user API tokens, and the signed, expiring tokens handed to jobs and services.

A job token names one training result or one inference (`{"kind": "result", "id": 7}`) and is
signed with a salt per kind, so a token of one kind never verifies as another. Jobs send it as
`Authorization: Bearer <token>`; only the job endpoints accept it, and only for their own object.
A service token (`kind: "service"`) lets the control logger record datasources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

if TYPE_CHECKING:
    # Imported only for types: rest_framework.views imports this module through its settings.
    from rest_framework.views import APIView

JobKind = Literal["result", "inference", "service"]


class UserTokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`: a user's API token (rest_framework.authtoken)."""

    keyword = "Token"


@dataclass(frozen=True)
class JobPrincipal:
    """Who a job token speaks for: one result, one inference, or a service (id 0)."""

    kind: JobKind
    id: int

    is_authenticated = True
    is_staff = False
    is_anonymous = False


def _signer(kind: JobKind) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=f"kafkaml.job-token.{kind}")


def issue_job_token(kind: JobKind, object_id: int = 0) -> str:
    """A signed token for one result or inference (or the service, id 0); expiry from settings."""
    return _signer(kind).sign_object({"kind": kind, "id": int(object_id)})


def read_job_token(token: str, kind: JobKind) -> JobPrincipal:
    """The principal a token of `kind` names.

    Raises AuthenticationFailed when the token is malformed, signed for another kind, tampered
    with, or older than its kind's maximum age.
    """
    max_age = (
        settings.KAFKAML.service_token_max_age_s
        if kind == "service"
        else settings.KAFKAML.job_token_max_age_s
    )
    try:
        payload: Any = _signer(kind).unsign_object(token, max_age=max_age)
    except signing.SignatureExpired as error:
        raise exceptions.AuthenticationFailed("The job token has expired.") from error
    except signing.BadSignature as error:
        raise exceptions.AuthenticationFailed("The job token is not valid here.") from error
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        raise exceptions.AuthenticationFailed("The job token is not valid here.")
    return JobPrincipal(kind=kind, id=int(payload["id"]))


def bearer_credential(request: Request) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header; None for another
    scheme or none. Raises AuthenticationFailed for a malformed Bearer header."""
    parts = authentication.get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Malformed Bearer authorization header.")
    return str(parts[1].decode("ascii", errors="replace"))


class JobTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <job token>` of one kind (set `kind` in a subclass)."""

    kind: JobKind
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[JobPrincipal, str] | None:
        token = bearer_credential(request)
        return None if token is None else (read_job_token(token, self.kind), token)

    def authenticate_header(self, request: HttpRequest) -> str:
        return f'{self.keyword} realm="kafkaml-jobs"'


class ResultJobAuthentication(JobTokenAuthentication):
    kind: JobKind = "result"


class InferenceJobAuthentication(JobTokenAuthentication):
    kind: JobKind = "inference"


class ServiceAuthentication(JobTokenAuthentication):
    kind: JobKind = "service"


class IsOwnJob(permissions.BasePermission):
    """The request carries a job token for exactly the object named in the URL (`pk`)."""

    message = "This job token is for another object."

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, JobPrincipal):
            return False
        if principal.kind == "service":
            return True
        return str(principal.id) == str(view.kwargs.get("pk"))
