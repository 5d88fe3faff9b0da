"""Prometheus metrics at /metrics, for a signed-in user or the service token."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from backend.kafkaml_backend.auth import ServiceAuthentication, UserTokenAuthentication


class MetricsApi(APIView):
    authentication_classes = [UserTokenAuthentication, ServiceAuthentication, SessionAuthentication]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
