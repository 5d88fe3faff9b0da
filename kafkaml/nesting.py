"""How deep JSON nests, measured without recursion, for every reader that must bound it before
parsing (the control message, the backend's request bodies): Python's parser and any recursive
walk over the result raise RecursionError on input nested a few thousand deep."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A JSON string (with its escapes; an unterminated one runs to the end, so the scan stays
# linear) or a bracket: what `json_text_depth` scans instead of parsing.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def json_text_depth(text: bytes) -> int:
    """How deep the arrays and objects of the JSON text `text` nest (0 for a scalar), found
    without parsing it, so that a text nested too deep for a recursive parser is measured
    safely. Brackets inside strings do not count; the text need not be valid JSON."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def json_value_depth(value: Any) -> int:
    """How deep the lists and dicts of the parsed JSON `value` nest (0 for a scalar); iterative,
    so any depth is measured without a RecursionError."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        pending.extend((child, depth + 1) for child in children)
    return deepest
