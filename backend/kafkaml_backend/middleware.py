"""Middleware of the backend: no body larger than Django's `DATA_UPLOAD_MAX_MEMORY_SIZE` is
read at all (multipart file parts aside, which Django streams to disk)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from backend.kafkaml_backend.errors import body_too_large, error_body


class BodySizeLimitMiddleware:
    """Answers 413 (JSON) before any view reads a body whose Content-Length is over
    DATA_UPLOAD_MAX_MEMORY_SIZE. Multipart bodies pass: their files may be larger (model
    artifacts), and Django's multipart parser bounds their other fields itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and not request.content_type.startswith("multipart/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return JsonResponse(error_body("Content-Length is not a number."), status=400)
            if length > limit:
                return body_too_large(limit)
        return self.get_response(request)
