"""One error type and one exception handler: every error body is `{"message": ..., "extra": {...}}`.

Field errors of a request body are under `extra.fields` (`{"field": ["what is wrong"]}`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A request the backend refuses, with a message for people and facts for programs.

    `status_code` is the HTTP status of the answer (400 unless a subclass says otherwise).
    """

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    """The object does not exist or belongs to someone else."""

    status_code = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    """The object is not in a state that allows the operation (e.g. stopping a finished result)."""

    status_code = status.HTTP_409_CONFLICT


class ServiceUnavailableError(ApplicationError):
    """A service the backend depends on (the model code executor, Kafka) could not be reached."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


def error_body(message: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"message": message, "extra": extra or {}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, answering every known error in the one shape."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.message, exc.extra), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("Invalid input.", {"fields": fields})
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body(str(exc.detail), {"retry_after_s": exc.wait})  # type: ignore[attr-defined]  # set in __init__, missing from the stub
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(str(detail))
    return response


def body_too_large(limit: int | None) -> JsonResponse:
    """The 413 answer for a request body over `limit` bytes."""
    return JsonResponse(
        error_body("The request body is too large.", {"limit_bytes": limit}), status=413
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler400: what Django refuses before a view answers (a body over the size limit: 413;
    too many fields, a bad host or another SuspiciousOperation: 400)."""
    if isinstance(exception, RequestDataTooBig):
        return body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    message = str(exception) if isinstance(exception, TooManyFieldsSent) else "Bad request."
    return JsonResponse(error_body(message), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler403 for what is refused outside the API views."""
    return JsonResponse(error_body("Permission denied."), status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """CSRF_FAILURE_VIEW: a session request without a valid CSRF token or from a foreign
    Origin."""
    return JsonResponse(error_body(f"CSRF check failed: {reason}", {"reason": reason}), status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404 for paths outside the API views."""
    return JsonResponse(error_body("Not found.", {"path": request.path}), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: a bug; the traceback is in the log, not in the answer."""
    return JsonResponse(error_body("Internal server error."), status=500)
