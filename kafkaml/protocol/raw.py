"""RAW: a record's value is the sample's bytes (C order, little-endian), its key the label's bytes.

Decoding is vectorized: the batch's lengths are checked at once, the values joined and read with
one `np.frombuffer`, never a numpy call per record.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kafkaml.protocol.errors import DecodeError, EncodeError, InputConfigError
from kafkaml.protocol.sides import Array, Role, part_name, shape_text

# Kafka-ML's TensorFlow decoders accept these names besides numpy's; TensorFlow reads "float"
# as float32 and Kafka-ML's own sink packs a Python float as 4 bytes, so float32 it is here too.
_KAFKA_ML_ALIASES = {"float": "float32", "half": "float16", "double": "float64", "bool": "bool"}
_UNKNOWN = -1  # a dimension taken from the record's size (numpy/TensorFlow reshape's -1)


@dataclass(frozen=True)
class RawSide:
    """Fixed-size samples of one dtype and shape; `shape` may hold one -1 (from the data)."""

    type_name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], role: Role) -> RawSide:
        """The side that `{role}_type` and `{role}_reshape` describe; raises InputConfigError."""
        type_name = config.get(f"{role}_type")
        if not isinstance(type_name, str) or not type_name:
            raise InputConfigError(f"RAW input_config needs '{role}_type' (a numpy dtype name)")
        shape = parse_reshape(config.get(f"{role}_reshape"), f"{role}_reshape")
        return cls(type_name, raw_dtype(type_name, f"{role}_type"), shape)

    @classmethod
    def infer(cls, sample: Any) -> RawSide:
        """The side that carries samples like `sample` (its dtype and shape)."""
        array = _as_array(sample, 0)
        try:
            dtype = raw_dtype(array.dtype.name, "dtype")
        except InputConfigError as error:
            raise EncodeError(f"RAW cannot carry samples like {sample!r}: {error}") from None
        return cls(array.dtype.name, dtype, array.shape)

    def config(self, role: Role) -> dict[str, Any]:
        return {f"{role}_type": self.type_name, f"{role}_reshape": shape_text(self.shape)}

    def encode(self, batch: Any, role: Role) -> list[bytes]:
        array = _as_array(batch, None)
        if array.ndim == 0:
            raise EncodeError(f"{role} samples need a leading batch dimension")
        _check_encodable(self, array.dtype, array.shape[1:], role)
        contiguous = np.ascontiguousarray(array, dtype=self.dtype)
        if len(array) == 1:  # send(): one sample, no view needed
            return [contiguous.tobytes()]
        flat = contiguous.reshape(len(array), -1)
        size = flat.shape[1] * self.dtype.itemsize
        if size == 0:
            return [b""] * len(array)
        # One opaque item per sample: tolist() yields each sample's bytes in one C loop.
        records: list[bytes] = flat.view(_opaque(size)).reshape(-1).tolist()
        return records

    def decode(self, blobs: Sequence[bytes | None], role: Role) -> Array:
        count = len(blobs)
        lengths = _lengths(blobs, role)
        expected = self._record_bytes(lengths[0] if count else 0, role)
        if lengths.count(expected) != count:
            index = next(i for i, length in enumerate(lengths) if length != expected)
            raise DecodeError(
                f"the {part_name(role)} of record {index} has {lengths[index]} bytes, but "
                f"{role}_type {self.type_name} with {role}_reshape {shape_text(self.shape)!r} "
                f"needs {expected}",
                index=index,
            )
        shape = self._resolved(expected // self.dtype.itemsize)
        if count == 0 or expected == 0:
            return np.zeros((count, *shape), dtype=self.dtype)
        # Fixed-width bytes copy each value in one C loop (several times faster than b"".join);
        # every value has exactly `expected` bytes, so none is padded.
        records = np.fromiter(blobs, dtype=f"S{expected}", count=count)
        return records.view(self.dtype).reshape((count, *shape))

    def _record_bytes(self, first_length: int, role: Role) -> int:
        """Bytes per record: fixed by the shape, or (with a -1) the first record's length."""
        known = math.prod(dimension for dimension in self.shape if dimension != _UNKNOWN)
        fixed = known * self.dtype.itemsize
        if _UNKNOWN not in self.shape:
            return fixed
        if fixed == 0 or first_length % fixed:
            raise DecodeError(
                f"the {part_name(role)} of record 0 has {first_length} bytes, which is no "
                f"multiple of {fixed} ({role}_type {self.type_name}, {role}_reshape "
                f"{shape_text(self.shape)!r})",
                index=0,
            )
        return first_length

    def _resolved(self, items: int) -> tuple[int, ...]:
        if _UNKNOWN not in self.shape:
            return self.shape
        known = math.prod(dimension for dimension in self.shape if dimension != _UNKNOWN)
        return tuple(items // known if d == _UNKNOWN else d for d in self.shape)


@functools.lru_cache(maxsize=256)
def _check_encodable(
    side: RawSide, dtype: np.dtype[Any], sample_shape: tuple[int, ...], role: Role
) -> None:
    """Samples fit when their element count fits the shape; bytes are C order either way.

    Cached: a sink checks every batch, and batches of a stream share dtype and shape.
    """
    items = math.prod(sample_shape)
    known = math.prod(dimension for dimension in side.shape if dimension != _UNKNOWN)
    fits = items == known if _UNKNOWN not in side.shape else known > 0 and items % known == 0
    if not fits:
        raise EncodeError(
            f"{role} samples of shape {sample_shape} do not fit {role}_reshape "
            f"{shape_text(side.shape)!r}"
        )
    if not np.can_cast(dtype, side.dtype, casting="same_kind"):
        raise EncodeError(
            f"{role} samples of dtype {dtype} cannot be written as {role}_type {side.type_name}"
        )


@functools.lru_cache(maxsize=64)
def _opaque(size: int) -> np.dtype[Any]:
    return np.dtype((np.void, size))


def raw_dtype(name: str, field: str) -> np.dtype[Any]:
    """The little-endian numpy dtype a RAW type name means; raises InputConfigError.

    Every numpy name is accepted (`float64` included) plus Kafka-ML's aliases.
    """
    try:
        dtype = np.dtype(_KAFKA_ML_ALIASES.get(name, name))
    except TypeError:
        raise InputConfigError(f"{field} {name!r} is not a numpy dtype name") from None
    if dtype.hasobject or dtype.itemsize == 0:
        raise InputConfigError(f"{field} {name!r} has no fixed size, so RAW cannot carry it")
    return dtype.newbyteorder("<") if dtype.byteorder == "=" else dtype


def parse_reshape(value: Any, field: str) -> tuple[int, ...]:
    """The shape in a reshape setting: "28 28", "" (a scalar), a list of ints, or None (flat).

    Raises InputConfigError for anything else or more than one -1.
    """
    if value is None:
        return (_UNKNOWN,)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        shape = tuple(int(dimension) for dimension in value)
    except (TypeError, ValueError):
        raise InputConfigError(f"{field} {value!r} is not a list of dimensions") from None
    if any(d < _UNKNOWN for d in shape) or shape.count(_UNKNOWN) > 1:
        raise InputConfigError(f"{field} {value!r} has a negative dimension or several -1")
    return shape


def _as_array(sample: Any, index: int | None) -> Array:
    try:
        return np.asarray(sample)
    except ValueError as error:  # ragged nested lists
        where = f"sample {index}" if index is not None else "samples"
        raise EncodeError(f"{where} cannot be made into an array: {error}") from None


def _lengths(blobs: Sequence[bytes | None], role: Role) -> list[int]:
    try:
        return list(map(len, blobs))  # type: ignore[arg-type]
    except TypeError:
        index = next(i for i, blob in enumerate(blobs) if not isinstance(blob, bytes | bytearray))
        raise DecodeError(f"record {index} has no {part_name(role)}", index=index) from None
