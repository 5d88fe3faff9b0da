"""Reads of models and configurations, limited to what a user may see."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db.models import QuerySet

from backend.apps.mlmodels.models import Configuration, MLModel
from backend.kafkaml_backend.errors import NotFoundError

User = AuthUser | AnonymousUser  # request.user's type; the APIs let only authenticated users in


def model_list(*, user: User) -> QuerySet[MLModel]:
    """The models `user` may see: their own, or every model for staff."""
    models = MLModel.objects.select_related("upper", "lower")
    return models if user.is_staff else models.filter(owner=cast(AuthUser, user))


def model_get(*, user: User, model_id: int) -> MLModel:
    """One visible model; NotFoundError (404) for a missing model or another user's."""
    try:
        return model_list(user=user).get(pk=model_id)
    except MLModel.DoesNotExist as error:
        raise NotFoundError("Model not found.", {"id": model_id}) from error


def model_chain_below(model: MLModel) -> list[MLModel]:
    """`model` followed by its lower tiers, top to bottom (just `model` for a plain model)."""
    chain = [model]
    current = model
    while (lower := MLModel.objects.filter(upper=current).first()) is not None:
        chain.append(lower)
        current = lower
    return chain


def configuration_list(*, user: User) -> QuerySet[Configuration]:
    """The configurations `user` may see, with their models."""
    configurations = Configuration.objects.prefetch_related("ml_models")
    return configurations if user.is_staff else configurations.filter(owner=cast(AuthUser, user))


def configuration_get(*, user: User, configuration_id: int) -> Configuration:
    """One visible configuration; NotFoundError (404) otherwise."""
    try:
        return configuration_list(user=user).get(pk=configuration_id)
    except Configuration.DoesNotExist as error:
        raise NotFoundError("Configuration not found.", {"id": configuration_id}) from error
