"""Request body parsing shared by every API view."""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """The validated data of a request body.

    Raises rest_framework's ValidationError, answered as 400 with the field errors under
    `extra.fields`.
    """
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _check_storable(value: Any, depth: int = 0) -> None:
    """Raise ValidationError for JSON that a database column would refuse: NUL characters
    (PostgreSQL), non-finite numbers, or nesting deeper than 32 levels."""
    if depth > 32:
        raise serializers.ValidationError("Nested too deeply.")
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("Strings cannot contain NUL characters.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise serializers.ValidationError("Numbers must be finite.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, depth + 1)
            _check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item, depth + 1)


class JsonObjectField(serializers.JSONField):
    """A JSON object (never a string to evaluate) that every supported database can store."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        _check_storable(value)
        return value


class FiniteFloatField(serializers.FloatField):
    """A float that is neither NaN nor infinite."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("A finite number is required.")
        return value


def storable_json(value: Any) -> Any:
    """`value` if a database column can store it; ValidationError otherwise."""
    _check_storable(value)
    return value


# The largest id (and Kafka offset) a 64-bit signed column holds; larger input is a 400.
ID_MAX = 2**63 - 1
# Kafka partitions and the other 32-bit settings.
INT32_MAX = 2**31 - 1
# Free text that people write (descriptions), and model code with its imports.
DESCRIPTION_MAX = 10_000
CODE_MAX = 1_000_000


# Bounds of the numeric training arguments that Keras' fit/evaluate and Ignite's run take, so
# a request cannot ask for 10^30 epochs. `None` where the framework accepts null.
TRAINING_ARGUMENT_BOUNDS: dict[str, tuple[int, int, bool]] = {
    # name: (minimum, maximum, null allowed)
    "epochs": (1, 100_000, False),
    "max_epochs": (1, 100_000, False),
    "initial_epoch": (0, 100_000, False),
    "steps_per_epoch": (1, 10_000_000, True),
    "epoch_length": (1, 10_000_000, True),
    "steps": (1, 10_000_000, True),
    "validation_steps": (1, 10_000_000, True),
    "validation_freq": (1, 100_000, False),
    "batch_size": (1, 1_000_000, True),
    "validation_batch_size": (1, 1_000_000, True),
    "verbose": (0, 2, False),
}


def _training_arguments_schema() -> dict[str, Any]:
    properties = {
        name: {
            "type": "integer",
            "minimum": minimum,
            "maximum": maximum,
            **({"nullable": True} if nullable else {}),
        }
        for name, (minimum, maximum, nullable) in TRAINING_ARGUMENT_BOUNDS.items()
    }
    return {"type": "object", "properties": properties, "additionalProperties": True}


@extend_schema_field(_training_arguments_schema())
class TrainingArgumentsField(JsonObjectField):
    """Keyword arguments of training or evaluation (a JSON object) whose well-known numeric
    arguments (`TRAINING_ARGUMENT_BOUNDS`) are integers within sane bounds."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        errors = {
            name: error
            for name, (minimum, maximum, nullable) in TRAINING_ARGUMENT_BOUNDS.items()
            if name in value
            and (error := _bound_error(value[name], minimum, maximum, nullable)) is not None
        }
        if errors:
            raise serializers.ValidationError(errors)
        return value


def _bound_error(value: Any, minimum: int, maximum: int, nullable: bool) -> str | None:
    if value is None:
        return None if nullable else "May not be null."
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return "A whole number is required."
    if not minimum <= value <= maximum:
        return f"Must be between {minimum} and {maximum}."
    return None
