"""Session login for the UI, API tokens for programs, and the public health check."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.models import User
from django.db import connection
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.accounts.services import (
    login_failure_record,
    login_lockout_s,
    user_api_token,
)
from backend.kafkaml_backend.errors import ApplicationError
from backend.kafkaml_backend.validation import validated


class LoginInput(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class UserOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_staff = serializers.BooleanField()


class TokenOutput(serializers.Serializer[Any]):
    token = serializers.CharField()


class LoginApi(APIView):
    """Public: starts a session (cookie) for the web UI."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(request=LoginInput, responses=UserOutput, operation_id="auth_login")
    @method_decorator(ensure_csrf_cookie)
    def post(self, request: Request) -> Response:
        if not _same_origin(request):
            raise ForeignOriginError(
                "Logins are accepted only from the backend's own origin.",
                {"origin": request.META.get("HTTP_ORIGIN")},
            )
        data = validated(LoginInput, request.data)
        address = request.META.get("REMOTE_ADDR", "")
        wait = login_lockout_s(username=data["username"], address=address)
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed logins.")
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            login_failure_record(username=data["username"], address=address)
            raise AuthenticationFailedError("Wrong user name or password.")
        login(request._request, user)
        return Response(UserOutput(user).data)


def _same_origin(request: Request) -> bool:
    """Whether a browser sent the login from the backend's own origin (or a trusted one), so a
    foreign page cannot sign its visitor in to an account of its choosing. Programs send no
    Origin and pass; a browser's cross-site request without Origin is refused by Sec-Fetch-Site."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return request.META.get("HTTP_SEC_FETCH_SITE") != "cross-site"
    own = f"{request.scheme}://{request.get_host()}"
    return origin in {own, *settings.CSRF_TRUSTED_ORIGINS}


class ForeignOriginError(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN


class AuthenticationFailedError(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED


class LogoutApi(APIView):
    @extend_schema(request=None, responses={204: None}, operation_id="auth_logout")
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema(responses=UserOutput, operation_id="auth_me")
    def get(self, request: Request) -> Response:
        return Response(UserOutput(request.user).data)


class TokenApi(APIView):
    """The signed-in user's API token, for `Authorization: Token <key>`."""

    @extend_schema(request=None, responses=TokenOutput, operation_id="auth_token")
    def post(self, request: Request) -> Response:
        return Response({"token": user_api_token(user=cast(User, request.user))})


class HealthOutput(serializers.Serializer[Any]):
    status = serializers.CharField()
    database = serializers.CharField()


class HealthApi(APIView):
    """Public: the backend answers and reaches its database."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(responses=HealthOutput, operation_id="health")
    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"status": "ok", "database": "ok"})


class PlatformOutput(serializers.Serializer[Any]):
    kafka_bootstrap_servers = serializers.CharField()
    control_topic = serializers.CharField()


class PlatformApi(APIView):
    """Where producers send data: what the UI puts in its copyable sink snippets."""

    @extend_schema(responses=PlatformOutput, operation_id="platform")
    def get(self, request: Request) -> Response:
        return Response(
            {
                "kafka_bootstrap_servers": settings.KAFKA.bootstrap_servers,
                "control_topic": settings.KAFKAML.control_topic,
            }
        )
