"""The web UI's figures: the first page's JavaScript, and the live view's update rate under load.

1. First page: the JavaScript that index.html loads before anything else (its entry script and
   modulepreloads), gzipped at level 9 as a server would send it; the lazily loaded chunks
   (editor, charts, pages) listed apart. Target: <= 350 kB.
2. Live visualization: 5,000 predictions/s for 20 s produced to a topic while the stream the
   browser reads (`stream_updates`, as the SSE endpoint runs it) folds them; prints the updates
   per second it sent and the predictions they carried. Target: a bounded rate (4/s) whatever
   the input rate.

Not measured here: the browser's longest main-thread task under that load (a Playwright
script against the running stack would be the next step).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import uuid

from backend.apps.visualization.live import stream_updates
from kafkaml import frontend
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer

RATE, SECONDS, INTERVAL_S = 5_000, 20, 0.25


def first_page_js() -> tuple[int, dict[str, int]]:
    """(gzipped bytes of the first page's JavaScript, {lazy chunk: gzipped bytes})."""
    frontend.build()
    dist = frontend.FRONTEND / "dist"
    index = (dist / "index.html").read_text()
    first = set(re.findall(r'(?:src|href)="/(assets/[^"]+\.js)"', index))
    sizes = {
        str(path.relative_to(dist)): len(gzip.compress(path.read_bytes(), 9))
        for path in (dist / "assets").glob("*.js")
    }
    lazy = {name: size for name, size in sizes.items() if name not in first}
    return sum(sizes[name] for name in first), lazy


def live_rate(bootstrap: str) -> tuple[int, int, float]:
    """(updates sent, predictions carried, seconds) while RATE predictions/s arrive."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic = f"bench-live-{uuid.uuid4().hex[:8]}"
    ensure_topics(make_admin(kafka), [topic], partitions=2)
    events = stream_updates(
        make_consumer(kafka, enable_auto_commit=False), topic,
        interval_s=INTERVAL_S, max_duration_s=SECONDS + 5,
    )  # fmt: skip
    next(events)  # ready: reading from the end
    done = threading.Event()
    threading.Thread(target=_produce, args=(kafka, topic, done), daemon=True).start()
    updates, carried, started = 0, 0, time.monotonic()
    for event in events:
        if event.startswith("event: update"):
            updates += 1
            carried += json.loads(event.split("data: ", 1)[1])["count"]
        if done.is_set() and carried >= RATE * SECONDS:
            break
    elapsed = time.monotonic() - started
    events.close()
    return updates, carried, elapsed


def _produce(kafka: KafkaSettings, topic: str, done: threading.Event) -> None:
    producer = make_producer(kafka)
    value = json.dumps({"values": [0.1, 0.7, 0.2]}).encode()
    start, chunk = time.monotonic(), RATE // 100  # evenly, in 10 ms steps
    for step in range(SECONDS * 100):
        for index in range(chunk):
            producer.produce(topic, value, partition=index % 2)
        producer.poll(0)
        time.sleep(max(0.0, start + (step + 1) / 100 - time.monotonic()))
    producer.flush(30)
    done.set()


def run(bootstrap: str) -> None:
    first, lazy = first_page_js()
    print(f"first page JavaScript, gzipped: {first / 1024:.0f} kB (target <= 350 kB)")
    for name, size in sorted(lazy.items(), key=lambda item: -item[1]):
        print(f"  lazy {name}: {size / 1024:.0f} kB")
    updates, carried, elapsed = live_rate(bootstrap)
    print(
        f"live view fed {RATE}/s for {SECONDS} s: {updates} updates in {elapsed:.1f} s "
        f"({updates / elapsed:.1f}/s, bound {1 / INTERVAL_S:.0f}/s) carrying {carried} predictions"
    )
