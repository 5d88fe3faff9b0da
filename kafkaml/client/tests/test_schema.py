"""The client's records and request bodies against the API's own OpenAPI document."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import types
import typing
from typing import Any

import pytest

from kafkaml.client import Client, Configurations, Deployments, Inferences, Models
from kafkaml.client.types import SCHEMA_COMPONENTS
from kafkaml.testing import Stack

# JSON Schema type -> the Python types a record may declare for it.
_PYTHON_TYPES: dict[str | None, tuple[Any, ...]] = {
    "integer": (int,),
    "number": (float,),
    "string": (str, dt.datetime),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}

# Each create method and the request component its body must fit (client name -> API name).
_REQUESTS = {
    Models.create: ("MLModelCreateInputRequest", {}),
    Configurations.create: ("ConfigurationCreateInputRequest", {"model_ids": "ml_model_ids"}),
    Deployments.create: ("DeploymentCreateInputRequest", {"epochs": "fit_kwargs"}),
    Inferences.create: ("InferenceCreateInputRequest", {}),
}


@pytest.fixture(scope="module")
def schema(kafkaml_stack: Stack) -> dict[str, Any]:
    client = Client(
        kafkaml_stack.url, username=kafkaml_stack.username, password=kafkaml_stack.password
    )
    return client.schema()["components"]["schemas"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("record", list(SCHEMA_COMPONENTS), ids=lambda r: r.__name__)
def test_each_record_has_the_fields_types_and_nullability_of_its_schema(
    record: type, schema: dict[str, Any]
) -> None:
    component = schema[SCHEMA_COMPONENTS[record]]
    hints = typing.get_type_hints(record)
    fields = {field.name for field in dataclasses.fields(record)}
    assert fields == set(component["properties"]), SCHEMA_COMPONENTS[record]
    for name, spec in component["properties"].items():
        declared = hints[name]
        options = typing.get_args(declared) if _is_union(declared) else (declared,)
        assert (type(None) in options) == bool(spec.get("nullable")), name
        concrete = [typing.get_origin(o) or o for o in options if o is not type(None)]
        if spec.get("type") in _PYTHON_TYPES and Any not in concrete:
            assert set(concrete) <= set(_PYTHON_TYPES[spec["type"]]), (name, declared, spec)
        if spec.get("format") == "date-time":
            assert dt.datetime in concrete, name


@pytest.mark.parametrize("method", list(_REQUESTS), ids=lambda m: m.__qualname__)
def test_each_create_method_sends_only_what_its_request_schema_names(
    method: Any, schema: dict[str, Any]
) -> None:
    component, renamed = _REQUESTS[method]
    properties = schema[component]["properties"]
    parameters = [p for p in inspect.signature(method).parameters if p not in ("self", "options")]
    sent = {renamed.get(p, p) for p in parameters}
    assert sent <= set(properties), sent - set(properties)
    assert set(schema[component].get("required", [])) <= sent


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)
