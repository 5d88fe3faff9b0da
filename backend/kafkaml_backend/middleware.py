"""Middleware of the backend: no body larger than Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` is
read at all, nor a multipart body (files, which Django streams to disk) larger than
`KAFKAML_MAX_UPLOAD_BYTES`."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from backend.kafkaml_backend.errors import body_too_large, error_body


class BodySizeLimitMiddleware:
    """Answers 413 (JSON) before any view reads a body whose Content-Length is over
    DATA_UPLOAD_MAX_MEMORY_SIZE, or over KAFKAML_MAX_UPLOAD_BYTES for a multipart body (its
    files may be larger than other bodies: model artifacts; Django's multipart parser bounds
    its other fields itself)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = (
            settings.KAFKAML_MAX_UPLOAD_BYTES
            if cast(str, request.content_type).startswith("multipart/")
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        if limit is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse(error_body("Content-Length is not a number."), status=400)
            if length > limit:
                return body_too_large(limit)
        return self.get_response(request)
