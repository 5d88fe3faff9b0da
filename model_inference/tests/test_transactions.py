"""`retry_while_away` on its own: which Kafka errors count as the broker being away."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from model_inference.transactions import retry_while_away


class FailingFirst:
    """A call that raises `errors` in turn, then answers 7; `calls` counts the calls."""

    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))
        return 7


def test_a_timeout_without_the_retriable_flag_is_tried_again() -> None:
    # As `Consumer.committed` raises it right after a broker restart: no retriable flag.
    timeout = KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets")
    assert not timeout.retriable()
    call = FailingFirst(timeout, timeout)
    assert retry_while_away("reading the committed offsets", call, outage_s=30.0) == 7
    assert call.calls == 3


def test_an_error_that_is_neither_retriable_nor_a_timeout_is_raised_at_once() -> None:
    call = FailingFirst(KafkaError(KafkaError._STATE, "wrong state"))
    with pytest.raises(KafkaException):
        retry_while_away("aborting the transaction", call, outage_s=30.0)
    assert call.calls == 1
