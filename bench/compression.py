"""compression.type per codec: the sink's and the inference service's throughput, and whether
kafka-python 2.0.2 as Kafka-ML installs it (no lz4, snappy or zstd package) reads the result.

For each codec of KAFKAML_BENCH_COMPRESSION_CODECS (default none, gzip, snappy, lz4, zstd):
a RawSink sends KAFKAML_BENCH_COMPRESSION_RECORDS float32[18] samples with labels (default
200,000) and closes; the PyTorch service of `bench/inference.py` answers them with the same
codec on its outputs; kafka-python 2.0.2 from the compatibility environment
(tests/compat/environment.py, built from PyPI on first use) reads the first records of the
sink's topic. Codecs run in turn, KAFKAML_BENCH_COMPRESSION_ROUNDS times (default 2), and the
medians are printed with the ratio to `none` of the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.inference import FEATURES, TORCH, _service_throughput, _spec_file, _topic
from kafkaml.datasources.sinks import RawSink
from kafkaml.kafka import KafkaSettings
from kafkaml.runtime import tune_collector_for_streaming
from tests.compat.environment import compat_python

RECORDS = int(os.environ.get("KAFKAML_BENCH_COMPRESSION_RECORDS", "200000"))
ROUNDS = int(os.environ.get("KAFKAML_BENCH_COMPRESSION_ROUNDS", "2"))
CODECS = os.environ.get("KAFKAML_BENCH_COMPRESSION_CODECS", "none,gzip,snappy,lz4,zstd").split(",")
READER = (
    Path(__file__).resolve().parents[1] / "tests" / "compat" / "clients" / "kafka_python_read.py"
)


def run(bootstrap: str) -> None:
    try:
        python: Path | None = compat_python()
    except subprocess.CalledProcessError:
        python = None  # PyPI out of reach: the codecs are still measured
    x = np.random.default_rng(0).normal(size=(RECORDS, FEATURES)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.float32)
    sink: dict[str, list[float]] = {codec: [] for codec in CODECS}
    service: dict[str, list[float]] = {codec: [] for codec in CODECS}
    reads: dict[str, str] = {}
    print(f"{RECORDS:,} RAW float32[18] samples per run; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (shared machine: compare within a run)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as scratch:
        for round_ in range(ROUNDS):
            for codec in CODECS:
                settings = KafkaSettings(bootstrap_servers=bootstrap, compression_type=codec)  # type: ignore[arg-type]
                topic, rate = _sink_run(settings, x, y)
                sink[codec].append(rate)
                if round_ == 0:
                    reads[codec] = _kafka_python_reads(python, bootstrap, topic)
                workdir = Path(scratch) / f"{codec}-{round_}"
                imports, code = TORCH
                spec = _spec_file(workdir, "pytorch", imports, code, topic,
                                  _topic(settings, "bench-compression-out"))  # fmt: skip
                tune_collector_for_streaming()
                service[codec].append(_service_throughput(settings, spec, RECORDS).rate)
    base_sink, base_service = np.median(sink["none"]), np.median(service["none"])
    print(f"{'codec':7} {'sink rec/s':>12} {'vs none':>8} {'service rec/s':>14} {'vs none':>8}  "
          "kafka-python 2.0.2 (no extras) reads it")  # fmt: skip
    for codec in CODECS:
        s, v = float(np.median(sink[codec])), float(np.median(service[codec]))
        print(f"{codec:7} {s:12,.0f} {s / base_sink:8.0%} {v:14,.0f} {v / base_service:8.0%}  "
              f"{reads[codec]}")  # fmt: skip
    for codec in CODECS:
        print(f"  {codec}: sink runs {_runs(sink[codec])}; service runs {_runs(service[codec])}")


def _runs(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def _sink_run(
    settings: KafkaSettings,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
) -> tuple[str, float]:
    topic = _topic(settings, "bench-compression-in")
    started = time.perf_counter()
    with RawSink(topic=topic, deployment_id=1, kafka_settings=settings, progress=False,
                 control_topic=f"bench-compression-control-{uuid.uuid4().hex[:8]}",
                 partition=None) as sink:  # fmt: skip
        sink.send_many(x, y)
    return topic, RECORDS / (time.perf_counter() - started)


def _kafka_python_reads(python: Path | None, bootstrap: str, topic: str) -> str:
    if python is None:
        return "not measured: the compatibility environment could not be built"
    done = subprocess.run([str(python), str(READER), bootstrap, topic, "100", "30"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    answer = json.loads(done.stdout or '{"records": [], "error": "no output"}')
    if answer["error"]:
        return "no: " + str(answer["error"])[:70]
    return "yes" if len(answer["records"]) >= 100 else f"only {len(answer['records'])} records"
