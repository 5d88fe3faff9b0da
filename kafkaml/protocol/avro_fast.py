"""Vectorized Avro binary for the commonest schema: a record of one float/double field or one
array of them (what AvroSink infers for float samples).

Avro writes such a record as the numbers' little-endian bytes, an array framed by its item count
(a zigzag varint) and a terminating empty block (one zero byte). When every record of a batch has
that layout, numpy can write and read the whole batch at once; anything else (blocks split
differently by another writer, a bad record) falls back to fastavro record by record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kafkaml.protocol.sides import Array

_FLOATS: dict[str, np.dtype[Any]] = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}


@dataclass(frozen=True)
class FloatLayout:
    """One float field (`is_array` False) or one array of floats, in a one-field record."""

    dtype: np.dtype[Any]
    is_array: bool

    def encode(self, array: Array) -> list[bytes] | None:
        """Each sample's record bytes; None when the samples are not (n,) or (n, L) numbers."""
        if array.dtype.kind not in "fiu" or array.ndim != (2 if self.is_array else 1):
            return None
        numbers = np.ascontiguousarray(array, dtype=self.dtype).reshape(len(array), -1)
        if not self.is_array:
            return _rows(numbers.view(np.uint8))
        length = numbers.shape[1]
        prefix = (
            np.frombuffer(_zigzag_varint(length), np.uint8) if length else np.empty(0, np.uint8)
        )
        framed = np.zeros((len(array), len(prefix) + numbers.nbytes // len(array) + 1), np.uint8)
        framed[:, : len(prefix)] = prefix
        framed[:, len(prefix) : -1] = numbers.view(np.uint8)
        return _rows(framed)

    def decode(self, blobs: Sequence[bytes | None]) -> Array | None:
        """The batch as (n,) or (n, L); None when a record does not have the simple layout."""
        if not blobs or any(blob is None for blob in blobs):
            return None
        first: bytes = blobs[0]  # type: ignore[assignment]
        prefix, length = _count_prefix(first) if self.is_array else (b"", 1)
        if length is None:
            return None
        size = len(prefix) + length * self.dtype.itemsize + (1 if self.is_array else 0)
        lengths = list(map(len, blobs))  # type: ignore[arg-type]
        if size == 0 or lengths.count(size) != len(blobs):
            return None
        framed = np.fromiter(blobs, dtype=f"S{size}", count=len(blobs)).view(np.uint8)
        framed = framed.reshape(len(blobs), size)
        if not self.is_array:
            return framed.view(self.dtype).reshape(len(blobs))
        start, end = len(prefix), size - 1
        if (framed[:, :start] != np.frombuffer(prefix, np.uint8)).any() or framed[:, end].any():
            return None
        return np.ascontiguousarray(framed[:, start:end]).view(self.dtype)


def float_layout(fields: Sequence[tuple[str, Any]] | None, schema: Any) -> FloatLayout | None:
    """The layout of a one-field record schema of floats, or None for any other schema."""
    if fields is None or len(fields) != 1 or not isinstance(schema, dict):
        return None
    field_type = schema["fields"][0]["type"]
    if isinstance(field_type, str) and field_type in _FLOATS:
        return FloatLayout(_FLOATS[field_type], is_array=False)
    if isinstance(field_type, dict) and field_type.get("type") == "array":
        items = field_type.get("items")
        if isinstance(items, str) and items in _FLOATS:
            return FloatLayout(_FLOATS[items], is_array=True)
    return None


def _rows(matrix: Array) -> list[bytes]:
    rows: list[bytes] = matrix.view(np.dtype((np.void, matrix.shape[1]))).reshape(-1).tolist()
    return rows


def _zigzag_varint(number: int) -> bytes:
    value = number << 1  # zigzag of a non-negative number
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _count_prefix(record: bytes) -> tuple[bytes, int | None]:
    """The leading block count of an array and its value; None for a sized (negative) block."""
    value = shift = 0
    for index, byte in enumerate(record[:10]):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            count = (value >> 1) ^ -(value & 1)
            if count == 0:
                return record[:0], 0  # an empty array: just the terminating zero
            return (record[: index + 1], count) if count > 0 else (b"", None)
    return b"", None
