"""Users' credentials: API tokens, the admin user of a local stack, service tokens."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from backend.kafkaml_backend.auth import issue_job_token


def user_api_token(*, user: AbstractBaseUser) -> str:
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
