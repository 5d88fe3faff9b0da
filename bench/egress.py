"""What the job sandbox's network routes cost: a consume -> produce loop (an inference replica's
traffic without the model) run as sandboxed user code, once with the host's network (direct)
and once through the routes of `kafkaml.egress` (the default for local jobs), alternating.
`python -m bench egress`.

Each run consumes KAFKAML_BENCH_RECORDS x 100-byte records from a 4-partition topic and
produces each one to another topic; records/s counts from the first record to the last
delivery. CPU s: the loop's own (user + system, start-up included), and that of the launch's
processes outside the sandbox, which is the forwarding process with routes (the sandbox's
processes are reaped inside it, so their time does not reach this one). The machine's load
average is printed with every run: on a shared machine the figures move with it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import uuid

from kafkaml.egress import Endpoint, cluster_endpoints, url_endpoint
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_producer
from kafkaml.sandbox import Sandbox
from kafkaml.settings import PROJECT_ROOT

RECORDS = int(os.environ.get("KAFKAML_BENCH_RECORDS", "1000000"))
ROUNDS = int(os.environ.get("KAFKAML_BENCH_EGRESS_ROUNDS", "3"))
PARTITIONS = 4

_LOOP = r"""
import json, resource, sys, time
from confluent_kafka import TopicPartition, OFFSET_BEGINNING
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
bootstrap, source, sink, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = KafkaSettings(bootstrap_servers=bootstrap)
consumer = make_consumer(settings)
consumer.assign([TopicPartition(source, p, OFFSET_BEGINNING) for p in range(%(partitions)d)])
producer = make_producer(settings, linger_ms=5)
seen, start = 0, None
while seen < total:
    batch = consumer.consume(num_messages=10_000, timeout=30)
    if not batch:
        raise SystemExit("the loop stalled after %%d records" %% seen)
    start = start or time.perf_counter()
    for record in batch:
        while True:
            try:
                producer.produce(sink, record.value(), record.key())
                break
            except BufferError:
                producer.poll(0.01)
    seen += len(batch)
    producer.poll(0)
if producer.flush(120):
    raise SystemExit("records were not delivered")
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"records": seen, "seconds": time.perf_counter() - start, "cpu": cpu}))
"""


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    source = f"bench-egress-{uuid.uuid4().hex[:8]}"
    sinks = [f"{source}-out-{i}" for i in range(2 * ROUNDS)]
    admin = make_admin(settings)
    ensure_topics(admin, [source, *sinks], partitions=PARTITIONS)
    _fill(settings, source)
    routes = [*cluster_endpoints(settings), url_endpoint("http://127.0.0.1:8000")]
    print(f"routes: {', '.join(map(str, routes))}")
    rates: dict[str, list[float]] = {"direct": [], "routed": []}
    mib = RECORDS * 2 * 100 / 2**20
    try:
        for i in range(ROUNDS):
            modes: tuple[tuple[str, bool | list[Endpoint]], ...] = (
                ("direct", True),
                ("routed", routes),
            )
            for j, (name, network) in enumerate(modes):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                rate, loop_cpu = _loop(bootstrap, source, sinks[2 * i + j], network)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                outside = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                rates[name].append(rate)
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(
                    f"{name}: {rate:,.0f} records/s; CPU s: loop {loop_cpu:.2f}, outside the "
                    f"sandbox {outside:.2f} (~{mib:.0f} MiB of values through it); "
                    f"load average {load}",
                    flush=True,
                )
    finally:
        admin.delete_topics([source, *sinks])
    direct, routed = max(rates["direct"]), max(rates["routed"])
    print(
        f"best of {ROUNDS}: direct {direct:,.0f} records/s, through the routes {routed:,.0f} "
        f"records/s ({routed / direct:.0%} of direct); {os.cpu_count()} CPUs"
    )


def _fill(settings: KafkaSettings, topic: str) -> None:
    producer = make_producer(settings)
    value = b"v" * 100
    for i in range(RECORDS):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i % 1000).encode())
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120):
        raise RuntimeError("the input records were not all delivered")


def _loop(
    bootstrap: str, source: str, sink: str, network: bool | list[Endpoint]
) -> tuple[float, float]:
    """Records/s and CPU seconds of one sandboxed loop; `network` True (the host's) or a list
    of endpoints."""
    code = _LOOP % {"partitions": PARTITIONS}
    argv = [sys.executable, "-c", code, bootstrap, source, sink, str(RECORDS)]
    launch = Sandbox(max_file_bytes=64 * 1024 * 1024).launch(
        argv,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
        cwd=PROJECT_ROOT,
        network=network,
        die_with_parent=False,
    )
    try:
        result = subprocess.run(
            launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        launch.close()
    if result.returncode != 0:
        raise RuntimeError(f"the loop failed ({result.returncode}): {result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["records"] < RECORDS:
        raise RuntimeError(f"the loop saw {figures['records']} of {RECORDS} records")
    return float(figures["records"] / figures["seconds"]), float(figures["cpu"])
