"""The control logger against the real broker and the real backend over HTTP."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import requests
from confluent_kafka import TopicPartition

from backend.apps.datasources.models import Datasource
from backend.kafkaml_backend.auth import issue_job_token
from kafka_control_logger.logger import (
    ERROR_HEADER,
    REASON_HEADER,
    SOURCE_HEADER,
    BackendClient,
    DeadLetters,
    LoggerMetrics,
    RetryPolicy,
    run,
)
from kafka_control_logger.tests.conftest import BackendServer, FailingProxy
from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import ControlMessage, InputFormat, encode_deployment_id
from kafkaml.testing import wait_until


class RunningLogger:
    def __init__(
        self, thread: threading.Thread, stop: threading.Event, dead_letters: DeadLetters
    ) -> None:
        self.thread, self.stop, self.dead_letters = thread, stop, dead_letters
        self.error: BaseException | None = None

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def dead_letter_count(self, reason: str) -> float:
        counter = self.dead_letters.metrics.dead_letters.labels(reason=reason)
        return float(counter._value.get())


@pytest.fixture
def start_logger(
    consumer_factory: Callable[..., Any],
    backend_server: BackendServer,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
) -> Iterator[Callable[..., RunningLogger]]:
    """Starts the logger (`run`) in a thread on a control topic and consumer group, with a
    fresh dead-letter topic (`logger.dead_letters.topic`)."""
    running: list[RunningLogger] = []

    def start(
        control_topic: str, group_id: str, backend_url: str | None = None, timeout_s: float = 5
    ) -> RunningLogger:
        consumer = consumer_factory(group_id)
        # One connection per request: no keep-alive connection outlives the test's server.
        session = requests.Session()
        session.headers["Connection"] = "close"
        backend = BackendClient(
            backend_url or backend_server.url,
            issue_job_token("service"),
            timeout_s=timeout_s,
            session=session,
        )
        dead_letters = DeadLetters(make_producer(kafka_settings), new_topic(), LoggerMetrics())
        stop = threading.Event()
        logger: RunningLogger
        policy = RetryPolicy(retry_max_s=0.5, max_failures=3)

        def target() -> None:
            try:
                run(consumer, backend, dead_letters, control_topic, stop, policy)
            except BaseException as error:  # reported by the test, not lost in the thread
                logger.error = error

        logger = RunningLogger(threading.Thread(target=target, daemon=True), stop, dead_letters)
        logger.thread.start()
        running.append(logger)
        return logger

    yield start
    for logger in running:
        logger.halt()


def control_message(deployment_id: int, topic: str) -> ControlMessage:
    return ControlMessage(
        deployment_id=deployment_id,
        topic=f"{topic}:0:0:10",
        input_format=InputFormat.RAW,
        input_config={
            "data_type": "float32",
            "label_type": "uint8",
            "data_reshape": "4",
            "label_reshape": "",
        },
        total_msg=10,
    )


@dataclass
class Bench:
    """What a logger test works with: a fresh control topic and consumer group on the broker."""

    control_topic: str
    group_id: str
    kafka_settings: KafkaSettings
    consumer_factory: Callable[..., Any]
    start_logger: Callable[..., RunningLogger]

    def start(
        self, backend_url: str | None = None, timeout_s: float = 5, group_id: str | None = None
    ) -> RunningLogger:
        """A logger on the control topic, in the bench's group unless told another."""
        return self.start_logger(
            self.control_topic, group_id or self.group_id, backend_url, timeout_s
        )

    def send(self, *records: tuple[bytes, bytes]) -> None:
        """Produces (key, value) records to the control topic, flushed."""
        producer = make_producer(self.kafka_settings)
        for key, value in records:
            producer.produce(self.control_topic, key=key, value=value)
        producer.flush(10)

    def committed(self) -> int:
        """The offset the bench's group committed on the control topic (negative: none yet)."""
        return committed_offset(self.consumer_factory(self.group_id), self.control_topic)

    def dead_letters(self, logger: RunningLogger, count: int) -> list[Any]:
        """The first `count` dead letters of `logger`, read from the start."""
        return dead_letters(self.consumer_factory, logger.dead_letters.topic, count)


@pytest.fixture
def bench(
    new_topic: Callable[..., str],
    group_id: str,
    kafka_settings: KafkaSettings,
    consumer_factory: Callable[..., Any],
    start_logger: Callable[..., RunningLogger],
) -> Bench:
    return Bench(new_topic(), group_id, kafka_settings, consumer_factory, start_logger)


def committed_offset(consumer: Any, topic: str) -> int:
    [position] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    return int(position.offset)


def wait_for_datasource(deployment: Any, what: str) -> None:
    wait_until(lambda: Datasource.objects.filter(deployment=deployment).exists(), what)


def test_a_control_message_sent_by_a_raw_sink_appears_as_a_datasource_of_its_deployment(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    new_topic: Callable[..., str],
    bench: Bench,
) -> None:
    deployment = make_deployment()
    backend_server.start()
    bench.start()
    sink = RawSink(
        topic=new_topic(),
        deployment_id=deployment.pk,
        control_topic=bench.control_topic,
        description="iris",
        validation_rate=0.2,
        kafka_settings=bench.kafka_settings,
        progress=False,
    )
    sink.send_many(np.random.rand(20, 4).astype("float32"), np.arange(20, dtype="uint8") % 3)
    sent = sink.close()
    wait_for_datasource(deployment, "the datasource")
    datasource = Datasource.objects.get(deployment=deployment)
    assert datasource.topic == sent.topic
    assert datasource.total_msg == 20
    assert datasource.description == "iris"
    assert datasource.input_config == sent.input_config


def test_malformed_or_unknown_deployment_messages_are_skipped_without_stopping_the_logger(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    bench: Bench,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = make_deployment()
    backend_server.start()
    unknown_key, unknown_value = control_message(10**9, "d").to_record()
    bench.send(
        (encode_deployment_id(deployment.pk), b"{not json"),
        (unknown_key, unknown_value),
        control_message(deployment.pk, "d").to_record(),
    )
    with caplog.at_level(logging.WARNING, logger="kafka_control_logger.logger"):
        logger = bench.start()
        wait_for_datasource(deployment, "the good message after the bad one")
    assert logger.thread.is_alive() and logger.error is None
    assert Datasource.objects.get().offset == 2
    assert any("malformed" in r.message and "@0" in r.message for r in caplog.records)
    assert any("refused" in r.message and "@1" in r.message for r in caplog.records)
    logger.halt()
    assert bench.committed() == 3
    dead = bench.dead_letters(logger, 2)
    assert [(d.value(), headers_of(d)[REASON_HEADER]) for d in dead] == [
        (b"{not json", b"malformed"),
        (unknown_value, b"refused"),
    ]
    assert headers_of(dead[1])[SOURCE_HEADER] == f"{bench.control_topic}[0]@1".encode()
    assert b"No deployment has this id" in headers_of(dead[1])[ERROR_HEADER]


def test_poison_control_messages_become_dead_letters_and_later_messages_are_recorded(
    make_deployment: Callable[[], Any], backend_server: BackendServer, bench: Bench
) -> None:
    deployment = make_deployment()
    backend_server.start()
    key, good = control_message(deployment.pk, "d").to_record()
    huge = json.loads(good)
    huge.update(topic=f"d:0:0:{2**70}", total_msg=2**70)
    poison = [
        json.dumps(huge).encode(),
        good.replace(
            b'"data_type"', b'"deep": ' + b"[" * 10_000 + b"]" * 10_000 + b', "data_type"'
        ),
    ]
    bench.send(*[(key, value) for value in [*poison, good]])
    logger = bench.start()
    wait_for_datasource(deployment, "the valid message after the poison ones")
    assert Datasource.objects.get().offset == 2
    dead = bench.dead_letters(logger, 2)
    assert [d.value() for d in dead] == poison
    errors = [headers_of(d)[ERROR_HEADER].decode() for d in dead]
    assert "largest offset" in errors[0]
    assert "nests 10002 deep" in errors[1]
    assert logger.dead_letter_count("malformed") == 2
    assert logger.thread.is_alive() and logger.error is None


@pytest.mark.parametrize("hang_s", [0.0, 2.0])
def test_a_message_the_backend_keeps_failing_on_is_a_dead_letter_after_bounded_tries(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    bench: Bench,
    failing_proxy: FailingProxy,
    hang_s: float,
) -> None:
    deployments = [make_deployment() for _ in range(2)]
    backend_server.start()
    failing_proxy.start(backend_server.url, fail_when=b"poisoned", hang_s=hang_s)
    poisoned = dataclasses.replace(control_message(deployments[0].pk, "p"), description="poisoned")
    bench.send(poisoned.to_record(), control_message(deployments[1].pk, "d").to_record())
    logger = bench.start(failing_proxy.url, timeout_s=0.5 if hang_s else 5.0)
    wait_for_datasource(deployments[1], "the message after the one the backend fails on")
    assert not Datasource.objects.filter(deployment=deployments[0]).exists()
    assert failing_proxy.failed == 3  # RetryPolicy.max_failures of the fixture
    [dead] = bench.dead_letters(logger, 1)
    assert headers_of(dead)[REASON_HEADER] == b"failed"
    error = headers_of(dead)[ERROR_HEADER]
    assert b"did not answer in time" in error if hang_s else b"500" in error
    assert logger.dead_letter_count("failed") == 1


def test_a_backend_that_fails_on_everything_is_waited_for_not_dead_lettered(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    bench: Bench,
    failing_proxy: FailingProxy,
) -> None:
    deployment = make_deployment()
    backend_server.start()
    failing_proxy.start(backend_server.url, fail_when=b"", fail_health=True)
    bench.send(control_message(deployment.pk, "d").to_record())
    logger = bench.start(backend_url=failing_proxy.url)
    wait_until(lambda: failing_proxy.failed > 5, "the logger to retry past its failure limit")
    assert logger.dead_letter_count("failed") == 0
    failing_proxy.fail_health = False
    failing_proxy.fail_when = b"never sent"
    wait_for_datasource(deployment, "the message once the backend is well again")
    assert logger.dead_letter_count("failed") == 0


def dead_letters(consumer_factory: Callable[..., Any], topic: str, count: int) -> list[Any]:
    """The first `count` records of the dead-letter `topic`, read from its start."""
    consumer = consumer_factory(f"reader-{topic}")
    consumer.subscribe([topic])
    records: list[Any] = []

    def read() -> bool:
        record = consumer.poll(0.5)
        if record is not None and record.error() is None:
            records.append(record)
        return len(records) >= count

    wait_until(read, f"{count} dead letters")
    return records


def headers_of(record: Any) -> dict[str, bytes]:
    return dict(record.headers() or [])


def test_control_messages_sent_while_the_backend_is_down_are_recorded_once_when_it_returns(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    bench: Bench,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployments = [make_deployment() for _ in range(3)]
    bench.send(*[control_message(d.pk, f"data{d.pk}").to_record() for d in deployments])
    with caplog.at_level(logging.WARNING, logger="kafka_control_logger.logger"):
        logger = bench.start()
        wait_until(
            lambda: any("backend unreachable" in r.message for r in caplog.records),
            "the logger to find the backend down",
        )
    assert not Datasource.objects.exists()
    backend_server.start()
    wait_until(lambda: Datasource.objects.count() == 3, "all three datasources")
    logger.halt()
    assert bench.committed() == 3
    # A second logger reading the topic from the start (a lost commit) records nothing twice.
    again = bench.start(group_id=f"{bench.group_id}-again")
    watcher = bench.consumer_factory(f"{bench.group_id}-again")
    wait_until(
        lambda: committed_offset(watcher, bench.control_topic) == 3,
        "the second logger to get through the topic",
    )
    again.stop.set()
    assert sorted(Datasource.objects.values_list("deployment_id", flat=True)) == sorted(
        d.pk for d in deployments
    )
    assert Datasource.objects.count() == 3
