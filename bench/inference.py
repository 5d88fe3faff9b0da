"""Streaming inference on one broker, one 18 -> 64 -> 64 -> 1 MLP, RAW float32 records.

(a) kafkaml's service with exactly-once on (one transaction per micro-batch), for Keras and
    PyTorch, and the PyTorch service with at-least-once delivery (no transactions); (b) the bare
    consume -> produce pipe with the same transactions and batches but no decode and no model
    (the ceiling), and the same pipe without transactions (the at-least-once service's
    ceiling; it commits offsets without waiting for delivery), and that pipe committing only
    delivered batches as the at-least-once service does; (c) Kafka-ML's loop reproduced as its
    model_inference/tensorflow/inference.py runs it (librdkafka's default client settings; poll
    one message, one Keras `model.predict()` per message, produce; every 16 messages a
    synchronous producer flush and an asynchronous offset commit) for a fixed time; (d) p50/p99
    latency from produce to a prediction readable with read_committed, at a paced offered
    load, with `python -m model_inference` and the reader of the predictions each running as a
    process of its own, after a warm-up at the same load.

(a) and (b) run KAFKAML_BENCH_INFERENCE_ROUNDS times (default 3), interleaved, over
KAFKAML_BENCH_INFERENCE_RECORDS records (default 500,000); medians are reported.
KAFKAML_BENCH_INFERENCE_ONLY=at-least-once runs only the at-least-once service and the two pipes
without transactions, and neither (c) nor (d).
KAFKAML_BENCH_KAFKAML_SECONDS (c, default 20), KAFKAML_BENCH_LATENCY_SECONDS,
KAFKAML_BENCH_LATENCY_RATE and KAFKAML_BENCH_LATENCY_WARMUP_SECONDS (d, 20 s at 10,000/s after
30 s unmeasured).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from confluent_kafka import Producer
from numpy.typing import NDArray

from kafkaml.frameworks import get_framework
from kafkaml.kafka import (
    KafkaSettings,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    make_transactional_producer,
)
from kafkaml.runtime import tune_collector_for_streaming
from model_inference.clients import build_service
from model_inference.delivery import (
    AT_LEAST_ONCE_COMMIT_INTERVAL_MS,
    AT_LEAST_ONCE_WINDOW,
    DeliveryFailures,
)
from model_inference.settings import InferenceSettings
from model_inference.spec import FileSpecSource

RECORDS = int(os.environ.get("KAFKAML_BENCH_INFERENCE_RECORDS", "500000"))
ROUNDS = int(os.environ.get("KAFKAML_BENCH_INFERENCE_ROUNDS", "3"))
ONLY = os.environ.get("KAFKAML_BENCH_INFERENCE_ONLY", "")
if ONLY not in ("", "at-least-once"):
    raise SystemExit(f"KAFKAML_BENCH_INFERENCE_ONLY={ONLY!r}: only 'at-least-once' is known")
KAFKAML_SECONDS = float(os.environ.get("KAFKAML_BENCH_KAFKAML_SECONDS", "20"))
LATENCY_SECONDS = float(os.environ.get("KAFKAML_BENCH_LATENCY_SECONDS", "20"))
LATENCY_RATE = int(os.environ.get("KAFKAML_BENCH_LATENCY_RATE", "10000"))
LATENCY_WARMUP_SECONDS = float(os.environ.get("KAFKAML_BENCH_LATENCY_WARMUP_SECONDS", "30"))
WARMUP_KEY_PREFIX = b"w"
# The service's batching window in (d). Each batch is one transaction, and on two shared cores
# the broker's work per transaction drives the tail: measured p99 122-147 ms with 5 ms windows,
# 92-121 ms with 10 ms (p50 16 -> 19 ms).
LATENCY_MAX_WAIT_MS = 10
# The load's producer and the answers' reader as a client of the platform would configure them:
# librdkafka's default 5 ms linger, and a fetch the broker holds until an answer is readable.
# Each short fetch or tiny produce request is broker work, and on two shared cores that work
# made the tail: measured on one warm broker, p99 129-142 ms with 1 ms linger and 5 ms fetches,
# 52 ms with 5 ms linger, 27-39 ms with both (p50 17-19 ms throughout).
LOAD_LINGER_MS = 5
READER_FETCH_WAIT_MS = 100
PARTITIONS = 4
MAX_BATCH = 10_000
FEATURES = 18
RAW_CONFIG = {"data_type": "float32", "data_reshape": str(FEATURES)}
SENT_HEADER = "bench-sent-ns"
# The pipes pass `produce` its arguments by position (partition from the key, no callback, the
# producer's clock, then the headers), as the service does (`transactions._produce_all`):
# keywords cost about 0.3 us a record on the loop's thread, which would handicap the ceiling.
_BY_POSITION = (-1, None, None, 0)

KERAS = (
    "import keras",
    """\
model = keras.Sequential([
    keras.Input((18,)),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer="adam", loss="binary_crossentropy")
""",
)
TORCH = (
    "import torch\nfrom torch import nn\nfrom ignite.metrics import Loss",
    """\
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(18, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
            nn.Linear(64, 1), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.layers(x)

    def loss_fn(self):
        return nn.BCELoss()

    def optimizer(self):
        return torch.optim.Adam(self.parameters())

    def metrics(self):
        return {"loss": Loss(self.loss_fn())}


model = MLP()
""",
)


def run(bootstrap: str) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as scratch:
        workdir = Path(scratch)
        source = _topic(settings, "bench-inference-in")
        x = np.random.default_rng(0).normal(size=(RECORDS, FEATURES)).astype(np.float32)
        _produce_samples(settings, source, x)
        tune_collector_for_streaming()  # the pipes run under the service's process settings
        print(f"input: {RECORDS:,} RAW float32[18] records in {PARTITIONS} partitions; "
              f"load average before: {_load()}")  # fmt: skip
        figures = _throughputs(settings, workdir, source)
        rates = {name: [run.rate for run in runs] for name, runs in figures.items()}
        for name, label in _LABELS.items():
            if name in rates:
                runs = ", ".join(f"{rate:,.0f}" for rate in rates[name])
                cpu = np.median([run.cpu_us for run in figures[name]])
                print(f"{label}: {np.median(rates[name]):,.0f} records/s (median of {runs}); "
                      f"{cpu:.2f} us of CPU a record in this process (median)")  # fmt: skip
        _print_at_least_once(rates)
        if ONLY:
            print(f"    load average after: {_load()} (the machine's cores are shared)")
            return
        kafka_ml = _kafka_ml_throughput(settings, source, workdir / "tensorflow")
        print(f"(c) Kafka-ML's loop (predict per message; flush and async commit every 16): "
              f"{kafka_ml:,.1f} predictions/s")  # fmt: skip
        best = max(float(np.median(rates[name])) for name in ("pytorch", "tensorflow"))
        ceiling = float(np.median(rates["pipe"]))
        print(f"    (a)/(b) = {best / ceiling:.0%} (best framework, medians); "
              f"(a)/(c) = {best / kafka_ml:,.0f}x")  # fmt: skip
        p50, p99, answered = _latency(settings, workdir, bootstrap)
        print(f"    load average after: {_load()} (the machine's cores are shared)")
        print(f"(d) latency at {LATENCY_RATE:,} msg/s offered for {LATENCY_SECONDS:.0f} s "
              f"after {LATENCY_WARMUP_SECONDS:.0f} s of the same load unmeasured, "
              f"max_wait_ms={LATENCY_MAX_WAIT_MS} "
              f"({answered:,} answers), produce -> readable prediction: "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip


_LABELS = {
    "pytorch": "(a) kafkaml service, exactly-once, PyTorch",
    "tensorflow": "(a) kafkaml service, exactly-once, Keras",
    "at-least-once": "(a) kafkaml service, at-least-once, PyTorch",
    "pipe": "(b) bare consume -> produce pipe, exactly-once",
    "plain": "    the same pipe without transactions",
    "plain-delivered": "    the same pipe without transactions, at-least-once",
}


def _print_at_least_once(rates: dict[str, list[float]]) -> None:
    plain = float(np.median(rates["plain"]))
    at_least_once = float(np.median(rates["at-least-once"]))
    print(f"    at-least-once service / pipe without transactions = {at_least_once / plain:.0%}"
          f"; / that pipe at-least-once = "
          f"{at_least_once / float(np.median(rates['plain-delivered'])):.0%}"
          " (medians, same run)")  # fmt: skip
    rounds = zip(rates["at-least-once"], rates["plain"], strict=True)
    print("    the same per round (the rounds are interleaved): "
          + ", ".join(f"{service / pipe:.0%}" for service, pipe in rounds))  # fmt: skip


def _throughputs(settings: KafkaSettings, workdir: Path, source: str) -> dict[str, list[Figures]]:
    """ROUNDS interleaved runs of (a) and (b): the shared machine's load drifts over minutes."""
    specs = {}
    for framework, (imports, code) in (("pytorch", TORCH), ("tensorflow", KERAS)):
        if ONLY:
            break
        target = _topic(settings, f"bench-inference-{framework}")
        specs[framework] = _spec_file(workdir / framework, framework, imports, code, source, target)
    target = _topic(settings, "bench-inference-at-least-once")
    specs["at-least-once"] = _spec_file(workdir / "at-least-once", "pytorch", *TORCH, source,
                                        target, delivery="at-least-once")  # fmt: skip
    rates: dict[str, list[Figures]] = {name: [] for name in _LABELS if name in specs or
                                       name.startswith("plain") or not ONLY}  # fmt: skip
    for _ in range(ROUNDS):
        for name, spec in specs.items():
            rates[name].append(_service_throughput(settings, spec, RECORDS))
        if not ONLY:
            rates["pipe"].append(_pipe_throughput(settings, source, RECORDS, transactional=True))
        rates["plain"].append(_pipe_throughput(settings, source, RECORDS, transactional=False))
        rates["plain-delivered"].append(_delivered_pipe_throughput(settings, source, RECORDS))
    return rates


def _load() -> str:
    """The 1-minute load average and the core count: these figures depend on both."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def _topic(settings: KafkaSettings, prefix: str) -> str:
    """A new topic of PARTITIONS partitions, once every partition has its leader."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = make_admin(settings)
    ensure_topics(admin, [name], partitions=PARTITIONS)
    deadline = time.monotonic() + 30
    while True:
        topic = admin.list_topics(name, timeout=5).topics[name]
        leaders = [partition.leader for partition in topic.partitions.values()]
        if topic.error is None and len(leaders) == PARTITIONS and min(leaders) >= 0:
            return name
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {name}: no leader for every partition within 30 s")
        time.sleep(0.05)


def _produce_samples(settings: KafkaSettings, topic: str, x: NDArray[np.float32]) -> None:
    producer = make_producer(settings)
    for number, row in enumerate(x):
        _produce(producer, topic, row.tobytes(), str(number).encode())
        if number % 50_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("the input records were not delivered")


def _produce(producer: Producer, topic: str, value: bytes, key: bytes, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key, **kwargs)
            return
        except BufferError:
            producer.poll(0.01)


def _spec_file(
    directory: Path,
    framework: str,
    imports: str,
    code: str,
    source: str,
    target: str,
    delivery: str = "exactly-once",
) -> Path:
    directory.mkdir(parents=True)
    impl = get_framework(framework)
    kwargs = {} if framework == "tensorflow" else {"require_training": False}
    artifact = directory / f"model.{impl.artifact_format}"
    artifact.write_bytes(impl.build(imports, code, **kwargs).save())
    spec = {
        "inference_id": int(time.time()) % 1_000_000,
        "model_version": "1",
        "framework": framework,
        "artifact_format": impl.artifact_format,
        "model": {"imports": imports, "code": code},
        "input_format": "RAW",
        "input_config": RAW_CONFIG,
        "input_topic": source,
        "output_topic": target,
        "artifact_path": artifact.name,
        "delivery": delivery,
    }
    path = directory / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _service_throughput(settings: KafkaSettings, spec: Path, records: int) -> Figures:
    """Predictions per second of one in-process service working through the input topic."""
    inference = InferenceSettings(spec_file=spec, replica=uuid.uuid4().hex[:8],
                                  max_batch=MAX_BATCH, id=int(time.time_ns() % 10**9))  # fmt: skip
    _, service = build_service(inference, settings, FileSpecSource(spec, inference.id))
    tune_collector_for_streaming()  # as `python -m model_inference` does after start-up
    service.subscribe(json.loads(spec.read_text())["input_topic"])
    clock = _Clock()
    while service.committed_records < records:
        if service.process_batch():
            clock.start()
    figures = clock.figures(records)
    service.close()
    return figures


def _pipe_throughput(
    settings: KafkaSettings, source: str, records: int, transactional: bool
) -> Figures:
    """Records per second through consume -> produce of the unchanged records (no model).

    The same batches as the service, and with transactions the same overlap of one batch's
    commit with the next batch's consumption, so only decode, prediction and formatting differ.
    """
    target = _topic(settings, "bench-pipe-out")
    consumer = make_consumer(settings, f"bench-pipe-{uuid.uuid4().hex[:8]}",
                             isolation_level="read_committed")  # fmt: skip
    if transactional:
        producer = make_transactional_producer(settings, f"bench-pipe-{uuid.uuid4().hex[:8]}",
                                               linger_ms=5, retry_backoff_ms=10)  # fmt: skip
    else:
        producer = make_producer(settings, linger_ms=5)
    consumer.subscribe([source])
    committer = ThreadPoolExecutor(max_workers=1)
    in_flight: Future[None] | None = None
    done, clock = 0, _Clock()
    while done < records:
        messages = consumer.consume(MAX_BATCH, 0.02)
        if not messages:
            continue
        clock.start()
        positions = consumer.position(consumer.assignment())
        if in_flight is not None:
            in_flight.result()
        if transactional:
            producer.begin_transaction()
        produce = producer.produce
        for message in messages:
            produce(target, message.value(), message.key(), *_BY_POSITION, message.headers())
        if transactional:
            metadata = consumer.consumer_group_metadata()
            in_flight = committer.submit(_commit_pipe, producer, positions, metadata)
        else:
            producer.poll(0)
            consumer.commit(offsets=positions, asynchronous=True)
        done += len(messages)
    if in_flight is not None:
        in_flight.result()
    figures = clock.figures(records)
    producer.flush(60)
    consumer.close()
    return figures


def _delivered_pipe_throughput(settings: KafkaSettings, source: str, records: int) -> Figures:
    """The pipe without transactions, committing as the at-least-once service does.

    The plain pipe above commits each batch's offsets without waiting for its delivery (a
    crash can lose records). Here a batch's offsets are stored for the consumer's automatic
    commit only once the producer's queue was seen empty after the batch, checked before each
    batch is produced and waited for when AT_LEAST_ONCE_WINDOW batches are pending, as
    `model_inference.delivery.AtLeastOnceWriter` does; the records are forwarded unchanged.
    """
    target = _topic(settings, "bench-pipe-out")
    consumer = make_consumer(settings, f"bench-pipe-{uuid.uuid4().hex[:8]}",
                             isolation_level="read_committed", enable_auto_commit=True,
                             enable_auto_offset_store=False,
                             auto_commit_interval_ms=AT_LEAST_ONCE_COMMIT_INTERVAL_MS)  # fmt: skip
    failures = DeliveryFailures()
    producer = make_producer(settings, linger_ms=5, on_delivery=failures,
                             delivery_report_only_error=True)  # fmt: skip
    consumer.subscribe([source])
    pending: list[list[Any]] = []
    done, clock = 0, _Clock()
    while done < records or pending:
        messages = consumer.consume(MAX_BATCH, 0.02) if done < records else []
        producer.poll(0)
        if failures.errors:
            raise RuntimeError(f"a record was not delivered: {failures.errors[0]}")
        if len(producer) == 0 or len(pending) >= AT_LEAST_ONCE_WINDOW or not messages:
            if producer.flush(60):
                raise RuntimeError("the records were not delivered in time")
            for positions in pending:
                consumer.store_offsets(offsets=positions)
            pending.clear()
        if not messages:
            continue
        clock.start()
        pending.append(consumer.position(consumer.assignment()))
        produce = producer.produce
        for message in messages:
            produce(target, message.value(), message.key(), *_BY_POSITION, message.headers())
        done += len(messages)
    figures = clock.figures(records)
    consumer.close()
    return figures


class Figures(NamedTuple):
    """One run of a line: records per second, and CPU microseconds per record in this process."""

    rate: float
    cpu_us: float


class _Clock:
    """Wall and CPU time from the first batch on. The CPU time is the process's (every thread:
    the loop, the answering thread, librdkafka's), not the broker's: on a shared machine it
    moves much less than the rate, and it shows what each line costs itself."""

    def __init__(self) -> None:
        self._started: tuple[float, float] | None = None

    def start(self) -> None:
        """The first batch is in hand (later calls change nothing)."""
        if self._started is None:
            self._started = (time.perf_counter(), time.process_time())

    def figures(self, records: int) -> Figures:
        wall, cpu = self._started or (time.perf_counter(), time.process_time())
        elapsed = time.perf_counter() - wall
        return Figures(records / elapsed, (time.process_time() - cpu) / records * 1e6)


def _commit_pipe(producer: Producer, positions: list[Any], metadata: Any) -> None:
    producer.send_offsets_to_transaction(positions, metadata)
    producer.commit_transaction()


def _kafka_ml_throughput(settings: KafkaSettings, source: str, keras_dir: Path) -> float:
    """Kafka-ML's TensorFlow inference loop, reproduced, run for KAFKAML_SECONDS.

    As its model_inference/tensorflow/inference.py runs: clients with librdkafka's defaults
    (no tuned fetch or linger), `predict` on a batch of one, and every 16 messages a
    synchronous `flush()` and `commit()` (confluent-kafka commits asynchronously by default).
    """
    import keras
    from confluent_kafka import Consumer

    model = keras.saving.load_model(keras_dir / "model.keras")
    target = _topic(settings, "bench-kafka-ml-out")
    consumer = Consumer({**settings.client_config(), "auto.offset.reset": "earliest",
                         "group.id": f"bench-kafka-ml-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    producer = Producer(settings.client_config())
    consumer.subscribe([source])
    done, started = 0, None
    while started is None or time.perf_counter() - started < KAFKAML_SECONDS:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        started = started or time.perf_counter()
        x = np.frombuffer(message.value() or b"", dtype="float32").reshape(1, FEATURES)
        prediction = model.predict(x, verbose=0)
        value = json.dumps({"values": prediction.tolist()[0]}).encode()
        producer.produce(target, value, headers=message.headers())
        done += 1
        if done % 16 == 0:
            producer.flush()
            consumer.commit()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    producer.flush(30)
    consumer.close()
    return done / elapsed


def _latency(settings: KafkaSettings, workdir: Path, bootstrap: str) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, answers) with the service in its own process, at LATENCY_RATE.

    The reader of the answers runs in a third process, so neither the load generator nor the
    service competes with it for a GIL, and it takes each answer the moment it is readable.
    """
    source = _topic(settings, "bench-latency-in")
    target = _topic(settings, "bench-latency-out")
    imports, code = TORCH
    spec = _spec_file(workdir / "latency", "pytorch", imports, code, source, target)
    env = {**os.environ, "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "KAFKAML_INFERENCE_SPEC_FILE": str(spec), "KAFKAML_INFERENCE_REPLICA": "bench",
           "KAFKAML_INFERENCE_MAX_WAIT_MS": str(LATENCY_MAX_WAIT_MS)}  # fmt: skip
    log = (workdir / "latency" / "service.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "model_inference"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    reader = _LatencyReader(bootstrap, target)
    try:
        # One producer for the probes and the load: it is connected and holds its producer id
        # when the load starts, so no record waits for the client to start.
        producer = make_producer(settings, linger_ms=LOAD_LINGER_MS)
        _wait_until(lambda: _probe(producer, source, reader), process, log.name)
        # The same load, unmeasured, first: a broker started minutes ago answers transactions
        # several times slower until it has warmed up (measured on a fresh broker: p50 340 ms
        # in a first 10 s run of this load, 32 ms in the sixth, about a minute of load later).
        _paced_load(producer, source, LATENCY_RATE, LATENCY_WARMUP_SECONDS, WARMUP_KEY_PREFIX)
        _paced_load(producer, source, LATENCY_RATE, LATENCY_SECONDS)
        expected = int(LATENCY_RATE * LATENCY_SECONDS)
        _wait_until(lambda: reader.answers.value >= expected, process, log.name)
        latencies = reader.finish()
    finally:
        reader.stop()
        process.terminate()
        process.wait(60)
        log.close()
    ms = latencies / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(ms)


class _LatencyReader:
    """A process that reads the answers `read_committed` and keeps produce -> read times."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.answers = context.Value("q", 0)
        self.probes = context.Value("q", 0)
        self._stop = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=_read_latencies,
            args=(bootstrap, topic, self.answers, self.probes, self._stop, self._results),
            daemon=True,
        )
        self._process.start()

    def finish(self) -> NDArray[np.int64]:
        """Stop reading; the latencies (ns) of every answer but the probes."""
        self._stop.set()
        latencies: bytes = self._results.get(timeout=60)
        return np.frombuffer(latencies, dtype=np.int64)

    def stop(self) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()


def _read_latencies(
    bootstrap: str, topic: str, answers: Any, probes: Any, stop: Any, results: Any
) -> None:
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    consumer = make_consumer(settings, isolation_level="read_committed",
                             fetch_wait_max_ms=READER_FETCH_WAIT_MS)  # fmt: skip
    consumer.subscribe([topic])
    latencies: list[int] = []
    while not stop.is_set():
        # poll() returns as soon as one answer is readable; consume(n, t) would wait for n or t.
        message = consumer.poll(0.05)
        if message is None or message.error() is not None:
            continue
        received = time.time_ns()
        key = message.key() or b""
        if key == b"probe":
            probes.value += 1
            continue
        if key.startswith(WARMUP_KEY_PREFIX):
            continue
        sent: Any = dict(message.headers() or [])[SENT_HEADER]
        latencies.append(received - int(sent))
        answers.value += 1
    consumer.close()
    results.put(np.array(latencies, dtype=np.int64).tobytes())


def _probe(producer: Producer, source: str, reader: _LatencyReader) -> bool:
    """Send one probe and wait two seconds for its answer: the service and reader are ready."""
    _produce(producer, source, np.zeros(FEATURES, np.float32).tobytes(), b"probe",
             headers=[(SENT_HEADER, str(time.time_ns()).encode())])  # fmt: skip
    producer.flush(10)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not reader.probes.value:
        time.sleep(0.05)
    return bool(reader.probes.value)


def _paced_load(
    producer: Producer, topic: str, rate: int, seconds: float, key_prefix: bytes = b""
) -> None:
    """Produce `rate` records per second for `seconds`, in 1 ms steps, each stamped on sending.

    Keys are the records' numbers after `key_prefix`, so the load spreads over the partitions.
    """
    value = np.ones(FEATURES, np.float32).tobytes()
    total, started = int(rate * seconds), time.perf_counter()
    sent = 0
    while sent < total:
        due = min(int((time.perf_counter() - started) * rate), total)
        for number in range(sent, due):
            _produce(producer, topic, value, key_prefix + str(number).encode(),
                     headers=[(SENT_HEADER, str(time.time_ns()).encode())])  # fmt: skip
        sent = due
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(30)


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: str) -> None:
    """Poll `condition` until it holds; raises if the service exits or two minutes pass."""
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            tail = Path(log).read_text()[-2000:]
            raise RuntimeError(f"the service exited {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for the service (log: {log})")
        time.sleep(0.05)
