"""One error type and one exception handler: every error body is `{"message": ..., "extra": {...}}`.

Field errors of a request body are under `extra.fields` (`{"field": ["what is wrong"]}`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
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

    status_code = status.HTTP_400_BAD_REQUEST

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
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(str(detail))
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404 for paths outside the API views."""
    return JsonResponse(error_body("Not found.", {"path": request.path}), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: a bug; the traceback is in the log, not in the answer."""
    return JsonResponse(error_body("Internal server error."), status=500)
