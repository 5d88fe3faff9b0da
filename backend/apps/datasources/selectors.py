"""Reads of datasources, limited to what a user may see."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet

from backend.apps.datasources.models import Datasource
from backend.kafkaml_backend.errors import NotFoundError

User = AuthUser | AnonymousUser  # request.user's type; the APIs let only authenticated users in


def datasource_list(*, user: User, deployment_id: int | None = None) -> QuerySet[Datasource]:
    datasources = Datasource.objects.all()
    if deployment_id is not None:
        datasources = datasources.filter(deployment_id=deployment_id)
    return datasources if user.is_staff else datasources.filter(owner=cast(AuthUser, user))


def datasource_get(*, user: User, datasource_id: int) -> Datasource:
    """One visible datasource; NotFoundError (404) otherwise."""
    try:
        return datasource_list(user=user).get(pk=datasource_id)
    except Datasource.DoesNotExist as error:
        raise NotFoundError("Datasource not found.", {"id": datasource_id}) from error


def datasource_first_of_deployment(*, deployment_id: int) -> Datasource | None:
    """The earliest recorded datasource of a deployment (the stream it trained on)."""
    return Datasource.objects.filter(deployment_id=deployment_id).order_by("id").first()
