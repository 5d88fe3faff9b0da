"""Live predictions of an inference for the browser: read its output topic, send aggregates.

The reader is a plain consumer with `assign()` at each partition's end: it joins no group and
commits nothing (librdkafka still wants a `group.id`, so it gets a private one it never uses),
so viewers never disturb the inference or each other and see only what arrives while they watch.
Records are folded into one update per interval, so the browser gets at most 1/interval updates
per second however many predictions a second the topic carries.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition


@dataclass
class Window:
    """The predictions of one interval, folded: count, argmax per class, sums and the last one."""

    count: int = 0
    skipped: int = 0
    classes: Counter[int] = field(default_factory=Counter)
    sums: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)

    def add(self, values: list[float]) -> None:
        if not values:
            self.skipped += 1
            return
        self.count += 1
        self.classes[max(range(len(values)), key=values.__getitem__)] += 1
        if len(self.sums) < len(values):
            self.sums.extend([0.0] * (len(values) - len(self.sums)))
        for index, value in enumerate(values):
            self.sums[index] += value
        self.last = values

    def update(self) -> dict[str, Any]:
        """The JSON body of one server-sent update."""
        last_class = max(range(len(self.last)), key=self.last.__getitem__) if self.last else None
        return {
            "count": self.count,
            "skipped": self.skipped,
            "classes": {str(index): n for index, n in sorted(self.classes.items())},
            "last_class": last_class,
            "last": self.last,
            "mean": [total / self.count for total in self.sums] if self.count else [],
        }


def prediction_values(value: bytes | None) -> list[float]:
    """The flat `values` of one inference output record; [] when it is not one."""
    try:
        document = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return []
    values = document.get("values") if isinstance(document, dict) else None
    flat: list[float] = []
    stack = [values] if isinstance(values, list) else []
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            flat.append(float(item))
        else:
            return []
    return flat


def assign_at_end(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> bool:
    """Assign every partition of `topic` at its current end (no group, no commits).

    False when the topic does not exist yet (the inference has not produced to it).
    """
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return False
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in sorted(found.partitions)])
    return True


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream_updates(
    consumer: Consumer,
    topic: str,
    *,
    interval_s: float,
    max_duration_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Generator[str, None, None]:
    """Server-sent events: `ready`, then one `update` (or a comment) per interval.

    Ends after `max_duration_s` (the browser's EventSource reconnects on its own), so a stream
    never holds its server thread for long; closes the consumer however it ends.
    """
    try:
        assigned = assign_at_end(consumer, topic)
        yield "retry: 1000\n" + sse("ready", {"topic": topic, "interval_s": interval_s})
        deadline = clock() + max_duration_s
        while clock() < deadline:
            if not assigned:  # the topic appears with the inference's first prediction
                time.sleep(interval_s)
                assigned = assign_at_end(consumer, topic, timeout_s=interval_s)
                yield ": waiting for the topic\n\n"
                continue
            window = Window()
            end = clock() + interval_s
            while (remaining := end - clock()) > 0:
                for message in consumer.consume(num_messages=10_000, timeout=remaining):
                    if message.error() is None:
                        window.add(prediction_values(message.value()))
            yield sse("update", window.update()) if window.count or window.skipped else ": idle\n\n"
    finally:
        consumer.close()
