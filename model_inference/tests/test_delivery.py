"""The at-least-once delivery: the same answers and dead letters, without transactions."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import cast

from confluent_kafka import Message, TopicPartition

from kafkaml.kafka import KafkaSettings, make_consumer, make_producer
from kafkaml.testing import wait_until
from model_inference.service import InferenceService
from model_inference.tests.conftest import (
    Stream,
    TinyModel,
    produce_samples,
    produce_values,
    run_until,
    samples,
    start_service,
)
from model_inference.tests.reader import OutputReader, read_committed
from model_inference.tests.replicas import Replica
from model_inference.transactions import ERROR_HEADER


def _high_watermarks(kafka_settings: KafkaSettings, topic: str, partitions: int) -> int:
    consumer = make_consumer(kafka_settings)
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


def test_at_least_once_answers_every_input_and_dead_letters_without_transaction_markers(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, partitions=2, delivery="at-least-once")
    x = samples(500)
    bad = {0, 7, 250}
    values = [b"not a sample" if n in bad else row.tobytes() for n, row in enumerate(x)]
    produce_values(kafka_settings, source, values, partitions=2)
    service = start_service(spec, kafka_settings, max_batch=64)
    closing.append(service)

    run_until([service], lambda: service.committed_records >= len(x))
    service.close()

    # Transactions leave a commit marker at an offset of its own in each partition they wrote.
    answered = len(x) - len(bad)
    assert _high_watermarks(kafka_settings, target, 2) == answered
    assert _high_watermarks(kafka_settings, f"{source}.dlq", 2) == len(bad)
    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(
        str(i).encode() for i in range(len(x)) if i not in bad
    )
    dead = read_committed(kafka_settings, f"{source}.dlq")
    assert sorted(int(cast(bytes, r.key())) for r in dead) == sorted(bad)
    assert all(dict(cast("list[tuple[str, bytes]]", r.headers()))[ERROR_HEADER] for r in dead)


def test_at_least_once_commits_the_delivered_offsets_so_a_restart_answers_nothing_again(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, delivery="at-least-once")
    produce_samples(kafka_settings, source, samples(200))
    first = start_service(spec, kafka_settings, max_batch=50)
    closing.append(first)
    run_until([first], lambda: first.committed_records >= 200)
    first.close()
    produce_samples(kafka_settings, source, samples(100, seed=1), first_key=200)

    second = start_service(spec, kafka_settings, max_batch=50)
    closing.append(second)
    run_until([second], lambda: second.committed_records >= 100)
    second.close()

    outputs = read_committed(kafka_settings, target)
    assert Counter(r.key() for r in outputs) == Counter(str(i).encode() for i in range(300))


def test_at_least_once_loses_nothing_when_a_second_replica_joins_mid_stream(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    closing: list[InferenceService],
) -> None:
    source, target, spec = new_stream(torch_model, partitions=4, delivery="at-least-once")
    first = start_service(spec, kafka_settings, replica="0", max_batch=50)
    closing.append(first)
    stop = threading.Event()
    threads = [threading.Thread(target=first.run, args=(stop,))]
    threads[0].start()
    try:
        produce_samples(kafka_settings, source, samples(1000))
        wait_until(lambda: first.committed_records >= 200, "the first answers")
        second = start_service(spec, kafka_settings, replica="1", max_batch=50)
        closing.append(second)
        threads.append(threading.Thread(target=second.run, args=(stop,)))
        threads[1].start()
        produce_samples(kafka_settings, source, samples(1000, seed=1), first_key=1000)
        wait_until(lambda: first.assignment() and second.assignment(), "the rebalance")
        wait_until(lambda: first.committed_records + second.committed_records >= 2000, "answers")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    first.close()
    second.close()

    keys = {int(cast(bytes, r.key())) for r in read_committed(kafka_settings, target)}
    assert keys == set(range(2000))


def test_at_least_once_replica_killed_with_batches_in_flight_answers_every_input_in_order_per_key(
    torch_model: TinyModel,
    new_stream: Callable[..., Stream],
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    """SIGKILL while a backlog is answered in small batches (several produced and not yet seen
    delivered, as a rule), then more inputs for the restarted replica: each input is answered
    at least once, and each key's answers come in input order within each life of the replica
    (the restart goes back to the last commit)."""
    backlog, later, keys = 3000, 500, 16
    source, target, spec = new_stream(torch_model, partitions=2, delivery="at-least-once")
    replica = Replica(spec.path, kafka_settings, "0", tmp_path, KAFKAML_INFERENCE_MAX_BATCH="100")
    try:
        with OutputReader(kafka_settings, target) as reader:
            replica.start()
            _produce_sequenced(kafka_settings, source, range(backlog), keys)
            reader.wait_for(backlog // 10, 120, _running(replica))
            replica.kill()
            replica.start()
            # Inputs only the restarted replica can answer: once they are, it is serving.
            _produce_sequenced(kafka_settings, source, range(backlog, backlog + later), keys)
            wait_until(lambda: len({_sequence(r) for r in reader.records}) == backlog + later,
                       "every input answered", timeout_s=120)  # fmt: skip
            exit_code = replica.terminate()
            answers = reader.read_to_end()
    finally:
        replica.stop()

    assert {_sequence(answer) for answer in answers} == set(range(backlog + later))
    by_key: dict[bytes | None, list[int]] = {}
    for answer in answers:  # one output partition per key, read in offset order
        by_key.setdefault(answer.key(), []).append(_sequence(answer))
    assert len(by_key) == keys
    for key, sequence in by_key.items():
        # Increasing within each life; going back (to the last commit) only on the restart.
        back = sum(later <= earlier for earlier, later in pairwise(sequence))
        assert back < replica.starts, (key, sequence)
    assert exit_code == 0, replica.tail()


def _produce_sequenced(
    kafka_settings: KafkaSettings, topic: str, numbers: range, keys: int
) -> None:
    """A sample per number, keyed round-robin over `keys` keys, its number in a header."""
    producer = make_producer(kafka_settings)
    for number, row in zip(numbers, samples(len(numbers), seed=numbers.start), strict=True):
        headers: list[tuple[str, str | bytes | None]] = [("sequence", str(number).encode())]
        producer.produce(topic, row.tobytes(), f"key-{number % keys}".encode(), headers=headers)
    assert producer.flush(30) == 0


def _sequence(answer: Message) -> int:
    return int(cast(bytes, dict(answer.headers() or [])["sequence"]))


def _running(replica: Replica) -> Callable[[], None]:
    def check() -> None:
        assert replica.running(), f"the replica died:\n{replica.tail()}"

    return check
