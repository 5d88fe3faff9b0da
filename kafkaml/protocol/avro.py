"""AVRO: raw Avro binary (no container file, no schema-registry prefix); value = data record,
key = label record, schemas in input_config's `data_scheme` / `label_scheme`.

A record schema becomes one array: a single field gives that field's values (N, *field shape);
several fields are flattened and concatenated in schema order (N, total), which is how
Kafka-ML's decoder hands "the list of field tensors in schema order" to a model.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fastavro
import fastavro.validation
import numpy as np
from fastavro.schema import SchemaParseException

from kafkaml.protocol.avro_fast import FloatLayout, float_layout
from kafkaml.protocol.errors import DecodeError, EncodeError, InputConfigError
from kafkaml.protocol.sides import Array, Role, part_name, strict_array

_PRIMITIVE_DTYPES: dict[str, str | None] = {
    "boolean": "bool",
    "int": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": None,  # numpy picks the unicode width from the batch
    "bytes": None,
}
# What fastavro raises when bytes or a record do not fit the schema.
_AVRO_ERRORS = (
    EOFError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    OverflowError,
    UnicodeDecodeError,
    struct.error,
    fastavro.validation.ValidationError,
)


@dataclass(frozen=True)
class AvroSide:
    """Records of one Avro schema; `fields` is `[(name, dtype or None)]` for a record schema."""

    schema: dict[str, Any] | str
    parsed: Any = field(compare=False)
    fields: tuple[tuple[str, np.dtype[Any] | None], ...] | None
    dtype: np.dtype[Any] | None
    fast: FloatLayout | None = field(default=None, compare=False)

    @classmethod
    def from_schema(cls, schema: Any, name: str) -> AvroSide:
        """The side for `schema` (JSON text or parsed JSON); raises InputConfigError."""
        loaded = _load_schema(schema, name)
        try:
            parsed = fastavro.parse_schema(loaded)
        except (SchemaParseException, ValueError, TypeError, KeyError) as error:
            raise InputConfigError(f"{name} is not a valid Avro schema: {error}") from None
        if isinstance(loaded, dict) and loaded.get("type") == "record":
            fields = _record_fields(loaded, name)
            return cls(loaded, parsed, fields, None, float_layout(fields, loaded))
        return cls(loaded, parsed, None, _numpy_dtype(loaded, name))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], role: Role) -> AvroSide:
        key = f"{role}_scheme"
        if config.get(key) is None:
            raise InputConfigError(f"AVRO input_config needs '{key}' (the Avro schema)")
        return cls.from_schema(config[key], key)

    @classmethod
    def infer(cls, sample: Any, role: Role) -> AvroSide:
        """A record schema with one field named `role` that carries arrays like `sample`."""
        if isinstance(sample, Mapping):
            raise EncodeError(f"give {role}_scheme to send {role} records as dicts")
        array = np.asarray(sample)
        field_type: Any = _avro_type(array.dtype)
        for _ in array.shape:
            field_type = {"type": "array", "items": field_type}
        name = role.capitalize()
        return cls.from_schema(
            {"type": "record", "name": name, "fields": [{"name": role, "type": field_type}]}, role
        )

    def config(self, role: Role) -> dict[str, Any]:
        text = self.schema if isinstance(self.schema, str) else json.dumps(self.schema)
        return {f"{role}_scheme": text}

    def encode(self, batch: Any, role: Role) -> list[bytes]:
        if self.fast is not None and not _is_records(batch):
            encoded = self.fast.encode(np.asarray(batch))
            if encoded is not None:
                return encoded
        records, given = self._records(batch, role)
        buffer = io.BytesIO()
        encoded = []
        for index, record in enumerate(records):
            buffer.seek(0)
            buffer.truncate()
            try:
                if given:  # the writer alone would coerce some mismatches silently
                    fastavro.validation.validate(record, self.parsed, raise_errors=True)
                fastavro.schemaless_writer(buffer, self.parsed, record)
            except _AVRO_ERRORS as error:
                raise EncodeError(
                    f"{role} sample {index} does not match its Avro schema: {error}", index=index
                ) from None
            encoded.append(buffer.getvalue())
        return encoded

    def decode(self, blobs: Sequence[bytes | None], role: Role) -> Array:
        if self.fast is not None:
            decoded = self.fast.decode(blobs)
            if decoded is not None:
                return decoded
        records = [self._read(blob, index, role) for index, blob in enumerate(blobs)]
        if self.fields is None:
            return _column(records, self.dtype, role, "records")
        columns = [
            _column([record[name] for record in records], dtype, role, f"field {name!r}")
            for name, dtype in self.fields
        ]
        if len(columns) == 1:
            return columns[0]
        return _concatenate(columns, len(records), role)

    def _read(self, blob: bytes | None, index: int, role: Role) -> Any:
        if blob is None:
            raise DecodeError(f"record {index} has no {part_name(role)}", index=index)
        buffer = io.BytesIO(blob)
        try:
            record = fastavro.schemaless_reader(buffer, self.parsed, None)
        except _AVRO_ERRORS as error:
            raise DecodeError(
                f"the {part_name(role)} of record {index} does not match {role}_scheme: "
                f"{type(error).__name__}: {error}",
                index=index,
            ) from None
        left = len(blob) - buffer.tell()
        if left:
            raise DecodeError(
                f"the {part_name(role)} of record {index} has {left} bytes left over after a "
                f"{role}_scheme record; it was written with another schema",
                index=index,
            )
        return record

    def _records(self, batch: Any, role: Role) -> tuple[list[Any], bool]:
        """The Avro records for `batch` and whether the caller gave them (dicts) itself."""
        if _is_records(batch):
            return list(batch), True
        rows = np.asarray(batch).tolist()
        if self.fields is None:
            return rows, True
        names = [name for name, _ in self.fields]
        if len(names) == 1:
            return [{names[0]: row} for row in rows], False
        if any(not isinstance(row, list) or len(row) != len(names) for row in rows):
            raise EncodeError(
                f"{role} samples must be records (dicts) or rows of {len(names)} values, one per "
                f"field of the schema"
            )
        return [dict(zip(names, row, strict=True)) for row in rows], False


def _is_records(batch: Any) -> bool:
    """Whether `batch` is a list of records (dicts) rather than an array of samples."""
    return isinstance(batch, Sequence) and bool(batch) and isinstance(batch[0], Mapping)


def _load_schema(schema: Any, name: str) -> Any:
    if not isinstance(schema, str):
        return schema
    try:
        return json.loads(schema)
    except ValueError:
        pass
    try:  # Kafka-ML's decoder also took a Python repr of the schema (single quotes)
        return json.loads(schema.replace("'", '"'))
    except ValueError:
        raise InputConfigError(f"{name} is not Avro schema JSON") from None


def _record_fields(schema: dict[str, Any], name: str) -> tuple[tuple[str, Any], ...]:
    specs = schema.get("fields")
    if not isinstance(specs, list) or not all(
        isinstance(spec, dict) and "name" in spec and "type" in spec for spec in specs
    ):
        raise InputConfigError(f"{name} is not a valid Avro schema: a record needs its fields")
    return tuple((str(spec["name"]), _numpy_dtype(spec["type"], name)) for spec in specs)


def _numpy_dtype(avro_type: Any, name: str) -> np.dtype[Any] | None:
    """The numpy dtype of one Avro type; arrays give their items' dtype."""
    if isinstance(avro_type, str) and avro_type in _PRIMITIVE_DTYPES:
        dtype_name = _PRIMITIVE_DTYPES[avro_type]
        return np.dtype(dtype_name) if dtype_name else None
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "array":
            return _numpy_dtype(avro_type.get("items"), name)
        if kind in ("enum", "fixed"):
            return None
        if isinstance(kind, str) and kind in _PRIMITIVE_DTYPES:
            return _numpy_dtype(kind, name)
    raise InputConfigError(
        f"{name} has a field of type {json.dumps(avro_type)}; kafkaml decodes booleans, numbers, "
        "strings, bytes, enums and (nested) arrays of them"
    )


def _avro_type(dtype: np.dtype[Any]) -> str:
    """The Avro primitive that holds every value of `dtype` exactly."""
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind in "iu" and size <= 4 and not (kind == "u" and size == 4):
        return "int"
    if (kind == "i" and size == 8) or (kind == "u" and size == 4):
        return "long"
    if kind == "f" and size <= 8:
        return "float" if size <= 4 else "double"
    if kind in "US":
        return "string" if kind == "U" else "bytes"
    raise EncodeError(f"Avro has no type for numpy dtype {dtype}; give a schema")


def _column(values: list[Any], dtype: np.dtype[Any] | None, role: Role, what: str) -> Array:
    try:
        column = strict_array(values, dtype)
    except (ValueError, TypeError, OverflowError) as error:
        index = _first_odd_shape(values)
        raise DecodeError(
            f"{role} {what} of record {index} does not fit the others in the batch: {error}",
            index=index,
        ) from None
    if column.dtype.hasobject:
        raise DecodeError(f"{role} {what} mixes types or lengths across the batch")
    return column


def _first_odd_shape(values: list[Any]) -> int:
    first = np.shape(values[0]) if values else ()
    for index, value in enumerate(values):
        try:
            if np.shape(value) != first:
                return index
        except ValueError:
            return index
    return 0


def _concatenate(columns: list[Array], count: int, role: Role) -> Array:
    if count == 0:
        return np.empty((0, 0))
    try:
        dtype = np.result_type(*columns)
    except TypeError:
        raise DecodeError(
            f"the {role} fields have types that do not combine into one array"
        ) from None
    return np.concatenate([column.reshape(count, -1).astype(dtype) for column in columns], axis=1)
