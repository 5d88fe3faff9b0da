"""JSON: a record's value is a JSON array (or number), or an object whose `data_field` holds it;
its key is the label as JSON. `*_type` and `*_reshape` in input_config are optional.

Each record's value is parsed by itself: parsing the joined values of a batch at once is no
check of each one (`[1` and `2],[3, 4]` join into a valid batch of two), and it saved only a
quarter of the parse time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from kafkaml.protocol.errors import DecodeError, EncodeError, InputConfigError
from kafkaml.protocol.raw import parse_reshape
from kafkaml.protocol.sides import Array, Role, part_name, shape_text, strict_array

_UNKNOWN = -1


@dataclass(frozen=True)
class JsonSide:
    """JSON samples; `dtype` None lets numpy choose, `shape` None keeps the JSON's own nesting."""

    type_name: str | None
    dtype: np.dtype[Any] | None
    shape: tuple[int, ...] | None
    field: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], role: Role) -> JsonSide:
        type_name = config.get(f"{role}_type")
        reshape = config.get(f"{role}_reshape")
        field = config.get(f"{role}_field")
        if field is not None and not isinstance(field, str):
            raise InputConfigError(f"{role}_field {field!r} must be a string")
        return cls(
            type_name,
            json_dtype(type_name, f"{role}_type"),
            None if reshape is None else parse_reshape(reshape, f"{role}_reshape"),
            field,
        )

    @classmethod
    def infer(cls, sample: Any, field: str | None = None) -> JsonSide:
        """The side that carries samples like `sample`, announcing its dtype and shape."""
        try:
            array = np.asarray(sample)
        except ValueError as error:
            raise EncodeError(f"sample cannot be made into an array: {error}") from None
        if array.dtype.hasobject or array.dtype.kind in "SVMm":
            raise EncodeError(f"JSON cannot carry samples of dtype {array.dtype}")
        return cls(array.dtype.name, array.dtype, array.shape, field)

    def config(self, role: Role) -> dict[str, Any]:
        config: dict[str, Any] = {
            f"{role}_type": self.type_name,
            f"{role}_reshape": None if self.shape is None else shape_text(self.shape),
        }
        if self.field is not None:
            config[f"{role}_field"] = self.field
        return {key: value for key, value in config.items() if value is not None}

    def encode(self, batch: Any, role: Role) -> list[bytes]:
        if isinstance(batch, Sequence) and batch and isinstance(batch[0], Mapping):
            return [_dumps(record, index, role) for index, record in enumerate(batch)]
        array = self._encodable(batch, role)
        formatted = _formatted(array, self.field)
        if formatted is not None:
            return formatted
        rows: list[Any] = list(array.tolist())
        if self.field is not None:
            rows = [{self.field: row} for row in rows]
        return [_dumps(row, index, role) for index, row in enumerate(rows)]

    def decode(self, blobs: Sequence[bytes | None], role: Role) -> Array:
        samples = _parse_all(blobs, role)
        if self.field is not None:
            samples = [self._pick(sample, index, role) for index, sample in enumerate(samples)]
        array = self._array(samples, role)
        if self.shape is None:
            return array
        return self._reshaped(array, role)

    def _encodable(self, batch: Any, role: Role) -> Array:
        try:
            array = np.asarray(batch)
        except ValueError as error:
            raise EncodeError(f"{role} samples cannot be made into an array: {error}") from None
        if self.dtype is not None:
            if not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
                raise EncodeError(
                    f"{role} samples of dtype {array.dtype} cannot be written as {role}_type "
                    f"{self.type_name}"
                )
            array = array.astype(self.dtype, copy=False)
        if self.shape is not None and math.prod(array.shape[1:]) != math.prod(self.shape):
            raise EncodeError(
                f"{role} samples of shape {array.shape[1:]} do not match {role}_reshape "
                f"{shape_text(self.shape)!r}"
            )
        return array

    def _pick(self, sample: Any, index: int, role: Role) -> Any:
        if not isinstance(sample, dict) or self.field not in sample:
            raise DecodeError(
                f"the {part_name(role)} of record {index} is not a JSON object with field "
                f"{self.field!r}",
                index=index,
            )
        return sample[self.field]

    def _array(self, samples: list[Any], role: Role) -> Array:
        try:
            array = strict_array(samples, self.dtype)
        except (ValueError, TypeError, OverflowError) as error:
            index = _first_misfit(samples, self.dtype)
            raise DecodeError(
                f"the {part_name(role)} of record {index} does not fit {role}_type "
                f"{self.type_name} or the other records' shape: {error}",
                index=index,
            ) from None
        if array.dtype.hasobject:
            raise DecodeError(f"the {part_name(role)}s mix types across the batch")
        return array

    def _reshaped(self, array: Array, role: Role) -> Array:
        assert self.shape is not None
        count = len(array)
        items = math.prod(array.shape[1:])
        known = math.prod(d for d in self.shape if d != _UNKNOWN)
        fits = items == known if _UNKNOWN not in self.shape else (known and items % known == 0)
        if not fits:
            raise DecodeError(
                f"the {part_name(role)} of record 0 has {items} numbers, which "
                f"{role}_reshape {shape_text(self.shape)!r} cannot hold",
                index=0,
            )
        return array.reshape((count, *self.shape))


def json_dtype(type_name: Any, field: str) -> np.dtype[Any] | None:
    if type_name is None:
        return None
    try:
        return np.dtype(
            {"float": "float32", "half": "float16", "double": "float64"}.get(type_name, type_name)
        )
    except TypeError:
        raise InputConfigError(f"{field} {type_name!r} is not a numpy dtype name") from None


def json_documents(array: Array, field: str | None = None) -> list[bytes] | None:
    """Each sample of `array` (its leading axis) as a JSON document, or as `{field: sample}`.

    One orjson call writes a whole 1-D or 2-D batch, which is then split into samples by two
    byte-level passes (numbers hold no commas or brackets); deeper samples take an orjson call
    each. Floats are written in the shortest form that parses back to the identical value of
    their dtype, NaN and infinities as `null`. None when orjson cannot write the dtype (object,
    complex, strings, non-native byte order).
    """
    if array.ndim == 0:
        return None
    prefix, suffix = (b"", b"") if field is None else (b"{" + orjson.dumps(field) + b":", b"}")
    if len(array) == 0:
        return []
    try:
        if array.ndim > 2:
            return [prefix + _orjson(sample) + suffix for sample in np.ascontiguousarray(array)]
        text = _orjson(np.ascontiguousarray(array))
    except orjson.JSONEncodeError:
        return None
    if array.ndim == 1:
        samples, separator = text[1:-1], b","  # [1,2,3]
    else:
        # [[1,2],[3,4]]: each sample's own brackets go back on with the prefix and suffix
        samples, separator = text[2:-2], b"],["
        prefix, suffix = prefix + b"[", b"]" + suffix
    joined = samples.replace(separator, suffix + b"\n" + prefix)
    return (prefix + joined + suffix).split(b"\n")


def _orjson(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def _formatted(array: Array, field: str | None) -> list[bytes] | None:
    """The samples as JSON (`json_documents`), or None when they are not finite numbers:
    json.dumps then names the problem (JSON has no NaN)."""
    if array.dtype.kind not in "fiu" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
        return None
    return json_documents(array, field)


def _dumps(sample: Any, index: int, role: Role) -> bytes:
    try:
        return json.dumps(sample, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (ValueError, TypeError) as error:
        raise EncodeError(
            f"{role} sample {index} cannot be written as JSON: {error}", index=index
        ) from None


def _parse_all(blobs: Sequence[bytes | None], role: Role) -> list[Any]:
    """Each record parsed by orjson; a batch orjson refuses (a bad record, or NaN, Infinity
    or integers beyond 64 bits, which Python's json reads) is parsed again by json, which then
    accepts the same records and names a bad one in the same words."""
    try:
        return list(map(orjson.loads, blobs))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return [_parse_one(blob, index, role) for index, blob in enumerate(blobs)]


def _parse_one(blob: bytes | None, index: int, role: Role) -> Any:
    if blob is None:
        raise DecodeError(f"record {index} has no {part_name(role)}", index=index)
    try:
        return json.loads(blob)
    except ValueError as error:
        raise DecodeError(
            f"the {part_name(role)} of record {index} is not JSON: {error}", index=index
        ) from None


def _first_misfit(samples: list[Any], dtype: np.dtype[Any] | None) -> int:
    first = np.shape(samples[0]) if samples else ()
    for index, sample in enumerate(samples):
        try:
            if np.shape(strict_array(sample, dtype)) != first:
                return index
        except (ValueError, TypeError, OverflowError):
            return index
    return 0
