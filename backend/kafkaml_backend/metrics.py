"""Prometheus metrics at /metrics, for staff users and the service token only."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from rest_framework import permissions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from backend.kafkaml_backend.auth import (
    JobPrincipal,
    ServiceAuthentication,
    UserTokenAuthentication,
)


class IsStaffOrService(permissions.BasePermission):
    """A staff user, or the service token (a Prometheus scraper's credential)."""

    message = "Metrics are for staff users and the service token."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if isinstance(user, JobPrincipal):
            return user.kind == "service"
        return bool(user and user.is_authenticated and user.is_staff)


class MetricsApi(APIView):
    authentication_classes = [UserTokenAuthentication, ServiceAuthentication, SessionAuthentication]
    permission_classes = [IsStaffOrService]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
