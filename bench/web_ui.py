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
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from backend.apps.visualization.live import stream_updates
from kafkaml import frontend
from kafkaml.client import Client
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer
from kafkaml.settings import PROJECT_ROOT

RATE, SECONDS, INTERVAL_S = 5_000, 20, 0.25

# The browser side's inference serves this (4 features, 3 classes), imported with zero weights.
MODEL_CODE = """
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    def forward(self, x):
        return self.layers(x)
    def loss_fn(self):
        return torch.nn.CrossEntropyLoss()
    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)
    def metrics(self):
        return {}
model = Net()
"""


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


def browser_load(bootstrap: str) -> dict[str, Any]:
    """The visualization page's figures in chromium while its topic gets RATE predictions/s."""
    from tests.web_ui_stack import ui_stack

    with tempfile.TemporaryDirectory() as root, ui_stack(bootstrap, Path(root)) as env:
        client = Client(
            env["KAFKAML_UI_URL"], username=env["KAFKAML_UI_USER"],
            password=env["KAFKAML_UI_PASSWORD"],
        )  # fmt: skip
        result = client.models.import_artifact(
            _pytorch_weights(), name="bench-live", framework="pytorch", artifact_format="pytorch",
            imports="import torch", code=MODEL_CODE,
        )  # fmt: skip
        topic = f"bench-live-{uuid.uuid4().hex[:8]}"
        ensure_topics(make_admin(KafkaSettings(bootstrap_servers=bootstrap)), [topic], 2)
        inference = client.inferences.create(
            result.id, input_topic=f"{topic}-in", output_topic=topic, input_format="RAW",
            input_config={"data_type": "float32", "data_reshape": "4"},
        )  # fmt: skip
        client.inferences.stop(inference.id)  # the page reads its topic; no replica is needed
        out = Path(root) / "figures.json"
        bench_env = {
            "KAFKAML_BENCH_INFERENCE": str(inference.id), "KAFKAML_BENCH_TOPIC": topic,
            "KAFKAML_BENCH_RATE": str(RATE), "KAFKAML_BENCH_SECONDS": str(SECONDS),
            "KAFKAML_BENCH_OUT": str(out),
            "KAFKAML_TEST_CHROMIUM": os.environ.get("KAFKAML_TEST_CHROMIUM", "/usr/bin/chromium"),
            "PYTHONPATH": str(PROJECT_ROOT),
        }  # fmt: skip
        answer = subprocess.run(
            ["npx", "--no-install", "playwright", "test", "-c", "playwright.bench.config.ts",
             "--reporter=line"],
            cwd=frontend.FRONTEND, env={**os.environ, **env, **bench_env}, text=True,
            capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        if answer.returncode != 0:
            raise RuntimeError(f"the browser benchmark failed:\n{answer.stdout[-6000:]}")
        figures: dict[str, Any] = json.loads(out.read_text())
        return figures


def _pytorch_weights() -> bytes:
    import torch

    shapes = {"layers.0.weight": (8, 4), "layers.0.bias": (8,)}
    shapes |= {"layers.2.weight": (3, 8), "layers.2.bias": (3,)}
    buffer = io.BytesIO()
    torch.save({name: torch.zeros(shape) for name, shape in shapes.items()}, buffer)
    return buffer.getvalue()


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
    page = browser_load(bootstrap)
    print(
        f"visualization page in chromium, fed {RATE}/s for {SECONDS} s: longest main-thread task "
        f"{page['longest_ms']:.0f} ms (target: none over 200 ms); {page['over_50_ms']} tasks over "
        f"50 ms, {page['over_200_ms']} over 200 ms; {page['updates']} updates rendered "
        f"({page['frames']} chart frames) carrying {page['predictions']} predictions in "
        f"{page['seconds_in_browser']:.1f} s; longest task while the page loaded "
        f"{page['longest_before_load_ms']:.0f} ms"
    )


if __name__ == "__main__":  # the browser benchmark's producer: produce BOOTSTRAP TOPIC
    _, command, given_bootstrap, given_topic = sys.argv
    assert command == "produce", command
    _produce(KafkaSettings(bootstrap_servers=given_bootstrap), given_topic, threading.Event())
