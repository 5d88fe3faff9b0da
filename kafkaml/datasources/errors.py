"""What a sink raises besides the protocol's EncodeError (a sample that does not fit)."""

from __future__ import annotations


class SinkError(RuntimeError):
    """The sink cannot announce what it wrote (nothing sent, other writers, used after close)."""


class DeliveryError(SinkError):
    """The broker did not take a record; the stream is incomplete and is not announced."""
