"""Request body parsing shared by every API view."""

from __future__ import annotations

import math
import re
from typing import Any

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """The validated data of a request body or query.

    The JSON types are strict, as the OpenAPI document states them (DRF alone would take "5"
    for an integer, 5 for a string, "true" for a boolean); query and form values, which are
    text, must be plain decimal digits where an integer is expected. Raises rest_framework's
    ValidationError, answered as 400 with the field errors under `extra.fields`.
    """
    serializer = serializer_class(data=data)
    wrong = (
        _wrong_json_types(serializer, data)
        if type(data) is dict
        else _wrong_text_integers(serializer, data)
        if isinstance(data, QueryDict)
        else {}
    )
    if wrong:
        raise serializers.ValidationError(wrong)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# The JSON types each kind of field takes (checked in this order: ChoiceField before CharField).
_JSON_TYPES: list[tuple[type[serializers.Field[Any, Any, Any, Any]], tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "Must be true or false."),
    (serializers.IntegerField, (int,), "A whole number is required."),
    (serializers.FloatField, (int, float), "A number is required."),
    (serializers.ChoiceField, (str,), "A string is required."),
    (serializers.CharField, (str,), "A string is required."),
    (serializers.ListField, (list,), "A list is required."),
    (serializers.DictField, (dict,), "An object is required."),
]


def _wrong_json_types(
    serializer: serializers.Serializer[Any], data: dict[str, Any]
) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    for name, field in serializer.fields.items():
        value = data.get(name)
        if field.read_only or value is None:
            continue  # absent, or null: the field's own rules answer
        if isinstance(field, serializers.Serializer):
            nested = _wrong_json_types(field, value) if isinstance(value, dict) else {}
            if nested:
                errors[name] = nested
            continue
        message = _wrong_json_type(field, value)
        if message is None and isinstance(field, serializers.ListField) and value:
            message = next(
                filter(None, (_wrong_json_type(field.child, item) for item in value)), None
            )
        if message is not None:
            errors[name] = [message]
    return errors


def _wrong_json_type(field: serializers.Field[Any, Any, Any, Any], value: Any) -> str | None:
    for kind, types, message in _JSON_TYPES:
        if isinstance(field, kind):
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                return message
            return None
    return None


def _wrong_text_integers(
    serializer: serializers.Serializer[Any], data: QueryDict
) -> dict[str, Any]:
    return {
        name: ["A whole number is required."]
        for name, field in serializer.fields.items()
        if isinstance(field, serializers.IntegerField)
        and name in data
        and not re.fullmatch(r"-?[0-9]+", data.get(name) or "")
    }


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
