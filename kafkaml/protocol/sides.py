"""What every format's codec for one side of a record (the value's data or the key's label) offers.

A side is built from `input_config` (`data_*` keys for the value, `label_*` keys for the key) or
inferred from a sample; it encodes a batch of samples to one bytes object per record and decodes
a batch of records back into one array with a leading batch dimension.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Role = Literal["data", "label"]
Array = npt.NDArray[Any]


def part_name(role: Role) -> str:
    """Which part of a Kafka record holds `role` (for error messages)."""
    return "value" if role == "data" else "key"


class Side(Protocol):
    """The codec of one side of a record."""

    def config(self, role: Role) -> dict[str, Any]:
        """This side's entries of input_config (`data_*` or `label_*`)."""
        ...

    def encode(self, batch: Any, role: Role) -> list[bytes]:
        """One bytes object per sample of `batch` (leading dimension = samples).

        Raises EncodeError naming the first sample that does not fit.
        """
        ...

    def decode(self, blobs: Sequence[bytes | None], role: Role) -> Array:
        """The samples in `blobs` as one array; raises DecodeError with the bad record's index."""
        ...


def strict_array(values: Any, dtype: Any) -> Array:
    """`np.asarray(values, dtype)`, raising OverflowError for a number the dtype cannot hold.

    numpy 1.x only warns and wraps around (300 as uint8 becomes 44); a sample must not change.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            return np.asarray(values, dtype=dtype)
        except DeprecationWarning:
            raise OverflowError(f"a number is out of range for {np.dtype(dtype)}") from None


def shape_text(shape: Sequence[int]) -> str:
    """Kafka-ML's reshape notation: dimensions separated by spaces ("" for a scalar)."""
    return " ".join(str(dimension) for dimension in shape)
