"""Writes of models and configurations. Model code is stored only after the executor accepted it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from backend.apps.mlmodels import executor
from backend.apps.mlmodels.models import Configuration, MLModel
from backend.apps.mlmodels.selectors import model_chain_below
from backend.kafkaml_backend.errors import ApplicationError, ConflictError

CODE_FIELDS = ("framework", "imports", "code", "distributed")


def model_create(
    *,
    owner: User,
    name: str,
    framework: str,
    imports: str,
    code: str,
    description: str = "",
    distributed: bool = False,
    upper: MLModel | None = None,
) -> MLModel:
    """Validate the code in the executor, then store the model with the executor's summary.

    Raises ApplicationError (400, `extra.line`) for code the executor refuses.
    """
    summary = executor.validate_model_code(
        framework=framework, imports=imports, code=code, distributed=distributed
    )
    return model_create_validated(
        owner=owner,
        name=name,
        framework=framework,
        imports=imports,
        code=code,
        description=description,
        distributed=distributed,
        upper=upper,
        summary=summary,
    )


def model_create_validated(
    *,
    owner: User,
    name: str,
    framework: str,
    imports: str,
    code: str,
    summary: dict[str, Any],
    description: str = "",
    distributed: bool = False,
    upper: MLModel | None = None,
) -> MLModel:
    """Store a model whose code the executor already validated into `summary`."""
    model = MLModel(
        owner=owner,
        name=name,
        framework=framework,
        imports=imports,
        code=code,
        description=description,
        distributed=distributed,
        summary=summary,
    )
    _check_upper(model, upper)
    model.upper = upper
    model.save()
    return model


def model_update(*, model: MLModel, **changes: Any) -> MLModel:
    """Change a model; changed code (or framework, imports, distributed) is validated again.

    `changes` may hold name, description, framework, imports, code, distributed, upper.
    """
    if "upper" in changes:
        _check_upper(model, changes["upper"])
    if any(key in changes and changes[key] != getattr(model, key) for key in CODE_FIELDS):
        merged = {key: changes.get(key, getattr(model, key)) for key in CODE_FIELDS}
        changes["summary"] = executor.validate_model_code(**merged)
    with transaction.atomic():
        for key, value in changes.items():
            setattr(model, key, value)
        model.save()
    return model


def model_delete(*, model: MLModel) -> None:
    """Delete a model that no configuration uses and no other model names as its upper tier."""
    if model.configurations.exists():
        raise ConflictError(
            "The model is used by a configuration; delete that first.",
            {"configurations": list(model.configurations.values_list("id", flat=True))},
        )
    if MLModel.objects.filter(upper=model).exists():
        raise ConflictError("The model is the upper tier of another model.")
    if model.trainingresult_set.exists():
        raise ConflictError("The model has training results; delete them first.")
    model.delete()


def _check_upper(model: MLModel, upper: MLModel | None) -> None:
    """An upper tier: same owner and framework, both distributed, free, and no cycle."""
    if upper is None:
        return
    if upper.owner_id != model.owner_id:
        raise ApplicationError("Upper model not found.", {"fields": {"upper_id": ["not found"]}})
    if not (model.distributed and upper.distributed):
        raise ApplicationError(
            "Only distributed models form chains: mark both as distributed.",
            {"fields": {"upper_id": ["both models must be distributed"]}},
        )
    if upper.framework != model.framework:
        raise ApplicationError(
            "A chain's models use one framework.", {"fields": {"upper_id": ["another framework"]}}
        )
    lower = MLModel.objects.filter(upper=upper).exclude(pk=model.pk).first()
    if lower is not None:
        raise ApplicationError(
            "That upper model already has a lower tier.",
            {"fields": {"upper_id": [f"already above model {lower.pk}"]}},
        )
    if model.pk is not None and any(m.pk == upper.pk for m in model_chain_below(model)):
        raise ApplicationError("A chain cannot loop.", {"fields": {"upper_id": ["would loop"]}})


def configuration_create(
    *, owner: User, name: str, ml_models: Sequence[MLModel], description: str = ""
) -> Configuration:
    """Store a configuration; each chosen model brings the lower tiers of its chain along."""
    if not ml_models:
        raise ApplicationError(
            "A configuration needs at least one model.", {"fields": {"ml_model_ids": ["empty"]}}
        )
    with transaction.atomic():
        configuration = Configuration.objects.create(
            owner=owner, name=name, description=description
        )
        configuration.ml_models.set(_with_chains(ml_models))
    return configuration


def configuration_update(
    *,
    configuration: Configuration,
    name: str | None = None,
    description: str | None = None,
    ml_models: Sequence[MLModel] | None = None,
) -> Configuration:
    """Rename or re-describe a configuration; its models change only while it has no deployments."""
    with transaction.atomic():
        if name is not None:
            configuration.name = name
        if description is not None:
            configuration.description = description
        configuration.save()
        if ml_models is not None:
            if configuration.deployments.exists():
                raise ConflictError("The configuration has deployments; its models are fixed.")
            if not ml_models:
                raise ApplicationError(
                    "A configuration needs at least one model.",
                    {"fields": {"ml_model_ids": ["empty"]}},
                )
            configuration.ml_models.set(_with_chains(ml_models))
    return configuration


def configuration_delete(*, configuration: Configuration) -> None:
    """Delete a configuration that has no deployments."""
    if configuration.deployments.exists():
        raise ConflictError("The configuration has deployments; delete them first.")
    configuration.delete()


def _with_chains(ml_models: Sequence[MLModel]) -> list[MLModel]:
    chosen: dict[int, MLModel] = {}
    for model in ml_models:
        for member in model_chain_below(model):
            chosen[member.pk] = member
    return list(chosen.values())
