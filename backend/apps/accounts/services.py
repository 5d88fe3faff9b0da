"""Users' credentials: API tokens, the admin user of a local stack, service tokens."""

from __future__ import annotations

import hashlib
import math
import secrets
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from rest_framework.authtoken.models import Token

from backend.kafkaml_backend.auth import issue_job_token


def user_api_token(*, user: User) -> str:
    """The user's API token (`Authorization: Token <key>`), created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


def admin_ensure(*, username: str, password: str | None) -> str | None:
    """Make sure a staff superuser `username` exists.

    Creates it with `password`, or with a random password when None; returns the password it
    set, or None when the user already existed (its password is left as it is).
    """
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username=username).exists():
            return None
        chosen = password or secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=chosen)
    return chosen


def service_token_issue() -> str:
    """A service token for the control logger (signed, expiring after the service max age)."""
    return issue_job_token("service", 0)


def login_lockout_s(*, username: str, address: str) -> int | None:
    """Seconds until logins as `username` or from `address` are accepted again, or None when
    they are accepted now (fewer failures than the limits within the window)."""
    config = settings.KAFKAML
    limits = [
        (_failures_key("user", username.casefold()), config.login_failures_per_user),
        (_failures_key("address", address), config.login_failures_per_address),
    ]
    now = time.time()
    waits = [
        expires - now
        for key, limit in limits
        for count, expires in [cache.get(key, (0, 0.0))]
        if count >= limit and expires > now
    ]
    return math.ceil(max(waits)) if waits else None


def login_failure_record(*, username: str, address: str) -> None:
    """Count one failed login of `username` from `address` (in the window of login_lockout_s
    that the first failure opened)."""
    window = settings.KAFKAML.login_lockout_s
    now = time.time()
    for key in (_failures_key("user", username.casefold()), _failures_key("address", address)):
        count, expires = cache.get(key, (0, 0.0))
        if expires <= now:
            count, expires = 0, now + window
        cache.set(key, (count + 1, expires), timeout=math.ceil(expires - now) + 1)


def _failures_key(kind: str, name: str) -> str:
    return f"login-failures:{kind}:{hashlib.sha256(name.encode()).hexdigest()}"
