"""The one exception of the Python client."""

from __future__ import annotations

from typing import Any

from kafkaml.rest import BackendError


class KafkamlError(Exception):
    """A request the API refused, a backend that cannot be reached, or a wait that ran out.

    `message` is the API's own message (what to show a person); `extra` its details (field
    errors under `extra["fields"]`); `status` the HTTP status, None when there was no answer.
    """

    def __init__(
        self, message: str, *, extra: dict[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.status = status

    @classmethod
    def from_backend(cls, error: BackendError) -> KafkamlError:
        return cls(error.reason, extra=error.extra, status=error.status)

    def __str__(self) -> str:
        fields = self.extra.get("fields")
        if not isinstance(fields, dict) or not fields:
            return self.message
        named = "; ".join(f"{name}: {_text(problems)}" for name, problems in fields.items())
        return f"{self.message} ({named})"


def _text(problems: Any) -> str:
    if isinstance(problems, list):
        return ", ".join(_text(p) for p in problems)
    if isinstance(problems, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in problems.items())
    return str(problems)
