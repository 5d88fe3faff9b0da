"""What an inference writes for each input: `{"values": [...]}` under the input's key and
headers, plus the version of the model that answered."""

from __future__ import annotations

import json
from typing import Any

MODEL_VERSION_HEADER = "kafkaml-model-version"


def answer_values(value: bytes) -> Any:
    """The model's output values in an answer record's value."""
    return json.loads(value)["values"]


def model_version(headers: list[tuple[str, bytes]] | None) -> str | None:
    """The version of the model that answered, from an answer record's headers."""
    for name, content in headers or []:
        if name == MODEL_VERSION_HEADER and content is not None:
            return content.decode()
    return None
