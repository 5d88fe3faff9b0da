"""Answering one micro-batch: decode it, predict it in one call, route every record.

Nothing here talks to Kafka; the service produces what `answer_batch` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Message
from numpy.typing import NDArray

from kafkaml.frameworks import InputShapeError
from kafkaml.protocol import DecodeError, InputConfigError
from model_inference.predictions import format_values, forward_mask, split_output, tensor_rows
from model_inference.swap import Predictor

Decoder = Callable[[Sequence[bytes | None]], NDArray[Any]]
"""Values of a batch to the model's input (leading batch axis); raises DecodeError."""

# After this many bad records named by index, the rest of a batch is decoded one by one.
_INDEXED_RETRIES = 8


@dataclass(frozen=True)
class Routes:
    """Where the answers go: output topic, early-exit upper topic and limit, dead letters."""

    output_topic: str
    dlq_topic: str
    upper_topic: str | None = None
    limit: float | None = None

    @property
    def early_exit(self) -> bool:
        return self.upper_topic is not None and self.limit is not None


@dataclass
class Routed:
    """Input records bound for one topic, with the value each gets there."""

    messages: list[Message] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)


@dataclass
class Answers:
    """Every record of a batch, routed: to the output, to the upper tier, or dead."""

    output: Routed
    upper: Routed
    dead: list[tuple[Message, DecodeError]]


def answer_batch(
    messages: list[Message], decode: Decoder, predictor: Predictor, routes: Routes
) -> Answers:
    """Decode, predict once for the whole batch, and route each record.

    Raises ModelOutputError when the model's output does not fit the batch or the routes,
    and whatever `predict_batch` raises.
    """
    kept, x, dead = decode_separating(messages, decode)
    answers = Answers(Routed(), Routed(), dead)
    if x is None:
        return answers
    try:
        output = predictor.predict_batch(x)
    except InputShapeError as error:
        # Records of one shape that is not the model's: dead letters, not the end of the service.
        reason = DecodeError(f"the model cannot take these records: {error}")
        dead.extend((message, reason) for message in kept)
        return answers
    to_upper, prediction = split_output(output, len(kept), routes.early_exit)
    if to_upper is None or routes.limit is None:
        answers.output = Routed(kept, format_values(prediction))
        return answers
    forward = forward_mask(prediction, routes.limit)
    up, out = np.flatnonzero(forward), np.flatnonzero(~forward)
    answers.upper = Routed([kept[i] for i in up], tensor_rows(to_upper[up]))
    answers.output = Routed([kept[i] for i in out], format_values(prediction[out]))
    return answers


def decode_separating(
    messages: list[Message], decode: Decoder
) -> tuple[list[Message], NDArray[Any] | None, list[tuple[Message, DecodeError]]]:
    """(decodable messages, their decoded batch or None if none, the rest with their error).

    The whole batch is decoded in one call; only a batch with bad records takes the slow
    path, which drops the records the decoder names by index, then decodes the rest one by one
    and keeps the records of the most common sample shape: a record of another shape is a dead
    letter with the reason. Raises InputConfigError (no record can be decoded with this
    configuration); any other bad record is a dead letter.
    """
    try:
        return messages, decode([message.value() for message in messages]), []
    except InputConfigError:
        raise  # no record can be decoded: the inference is misconfigured
    except DecodeError:
        pass  # the slow path below finds the bad records
    kept, dead = _separate(messages, decode)
    if not kept:
        return kept, None, dead
    try:
        return kept, decode([message.value() for message in kept]), dead
    except DecodeError as error:  # records of one shape that still do not decode together
        return [], None, dead + [(message, error) for message in kept]


def _separate(
    messages: list[Message], decode: Decoder
) -> tuple[list[Message], list[tuple[Message, DecodeError]]]:
    kept, dead = list(messages), list[tuple[Message, DecodeError]]()
    for _ in range(_INDEXED_RETRIES):
        try:
            decode([message.value() for message in kept])
            return kept, dead
        except DecodeError as error:
            if error.index is None or not 0 <= error.index < len(kept):
                break
            if _decodes(kept[error.index], decode):
                break  # a good record of another shape than the first: compare shapes below
            dead.append((kept.pop(error.index), error))
    return _of_the_common_shape(kept, decode, dead)


def _decodes(message: Message, decode: Decoder) -> bool:
    try:
        decode([message.value()])
    except DecodeError:
        return False
    return True


def _of_the_common_shape(
    messages: list[Message], decode: Decoder, dead: list[tuple[Message, DecodeError]]
) -> tuple[list[Message], list[tuple[Message, DecodeError]]]:
    """The records of the most common sample shape (the earliest shape among equals); the
    others, and the records that do not decode alone, join `dead` with their reason."""
    shapes: dict[tuple[int, ...], list[Message]] = {}
    for message in messages:
        try:
            shapes.setdefault(decode([message.value()]).shape[1:], []).append(message)
        except DecodeError as error:
            dead.append((message, error))
    if not shapes:
        return [], dead
    common = max(shapes, key=lambda shape: len(shapes[shape]))
    for shape, group in shapes.items():
        if shape != common:
            reason = DecodeError(
                f"a sample of shape {list(shape)} in a batch of samples of shape {list(common)}"
            )
            dead.extend((message, reason) for message in group)
    return shapes[common], dead
