"""Request body parsing shared by every API view."""

from __future__ import annotations

import math
from typing import Any

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
