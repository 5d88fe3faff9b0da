"""The control logger against the real broker and the real backend over HTTP."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import requests
from confluent_kafka import TopicPartition

from backend.apps.datasources.models import Datasource
from backend.kafkaml_backend.auth import issue_job_token
from kafka_control_logger.logger import BackendClient, run
from kafka_control_logger.tests.conftest import BackendServer
from kafkaml.datasources import RawSink
from kafkaml.kafka import KafkaSettings, make_producer
from kafkaml.protocol import ControlMessage, InputFormat, encode_deployment_id
from kafkaml.testing import wait_until


class RunningLogger:
    def __init__(self, thread: threading.Thread, stop: threading.Event) -> None:
        self.thread, self.stop = thread, stop
        self.error: BaseException | None = None


@pytest.fixture
def start_logger(
    consumer_factory: Callable[..., Any], backend_server: BackendServer
) -> Iterator[Callable[[str, str], RunningLogger]]:
    """Starts the logger (`run`) in a thread on a control topic and consumer group."""
    running: list[RunningLogger] = []

    def start(control_topic: str, group_id: str) -> RunningLogger:
        consumer = consumer_factory(group_id)
        # One connection per request: no keep-alive connection outlives the test's server.
        session = requests.Session()
        session.headers["Connection"] = "close"
        backend = BackendClient(
            backend_server.url, issue_job_token("service"), timeout_s=5, session=session
        )
        stop = threading.Event()
        logger: RunningLogger

        def target() -> None:
            try:
                run(consumer, backend, control_topic, stop, retry_max_s=0.5)
            except BaseException as error:  # reported by the test, not lost in the thread
                logger.error = error

        logger = RunningLogger(threading.Thread(target=target, daemon=True), stop)
        logger.thread.start()
        running.append(logger)
        return logger

    yield start
    for logger in running:
        logger.stop.set()
        logger.thread.join(30)


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


def committed(consumer_factory: Callable[..., Any], group_id: str, topic: str) -> int:
    """The offset `group_id` committed on partition 0 of `topic` (negative: none yet)."""
    return committed_offset(consumer_factory(group_id), topic)


def committed_offset(consumer: Any, topic: str) -> int:
    [position] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    return int(position.offset)


def test_a_control_message_sent_by_a_raw_sink_appears_as_a_datasource_of_its_deployment(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    new_topic: Any,
    group_id: str,
    start_logger: Callable[[str, str], RunningLogger],
    kafka_settings: KafkaSettings,
) -> None:
    deployment = make_deployment()
    control_topic, data_topic = new_topic(), new_topic()
    backend_server.start()
    start_logger(control_topic, group_id)
    sink = RawSink(
        topic=data_topic,
        deployment_id=deployment.pk,
        control_topic=control_topic,
        description="iris",
        validation_rate=0.2,
        kafka_settings=kafka_settings,
        progress=False,
    )
    sink.send_many(np.random.rand(20, 4).astype("float32"), np.arange(20, dtype="uint8") % 3)
    sent = sink.close()
    wait_until(lambda: Datasource.objects.filter(deployment=deployment).exists(), "the datasource")
    datasource = Datasource.objects.get(deployment=deployment)
    assert datasource.topic == sent.topic
    assert datasource.total_msg == 20
    assert datasource.description == "iris"
    assert datasource.input_config == sent.input_config


def test_malformed_or_unknown_deployment_messages_are_skipped_without_stopping_the_logger(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    new_topic: Any,
    group_id: str,
    start_logger: Callable[[str, str], RunningLogger],
    kafka_settings: KafkaSettings,
    consumer_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = make_deployment()
    control_topic = new_topic()
    backend_server.start()
    producer = make_producer(kafka_settings)
    producer.produce(control_topic, key=encode_deployment_id(deployment.pk), value=b"{not json")
    unknown_key, unknown_value = control_message(10**9, "d").to_record()
    producer.produce(control_topic, key=unknown_key, value=unknown_value)
    good_key, good_value = control_message(deployment.pk, "d").to_record()
    producer.produce(control_topic, key=good_key, value=good_value)
    producer.flush(10)
    with caplog.at_level(logging.WARNING, logger="kafka_control_logger.logger"):
        logger = start_logger(control_topic, group_id)
        wait_until(
            lambda: Datasource.objects.filter(deployment=deployment).exists(),
            "the good message after the bad one",
        )
    assert logger.thread.is_alive() and logger.error is None
    assert Datasource.objects.get().offset == 2
    assert any("malformed" in r.message and "@0" in r.message for r in caplog.records)
    assert any("refused" in r.message and "@1" in r.message for r in caplog.records)
    logger.stop.set()
    logger.thread.join(30)
    assert committed(consumer_factory, group_id, control_topic) == 3


def test_control_messages_sent_while_the_backend_is_down_are_recorded_once_when_it_returns(
    make_deployment: Callable[[], Any],
    backend_server: BackendServer,
    new_topic: Any,
    group_id: str,
    start_logger: Callable[[str, str], RunningLogger],
    kafka_settings: KafkaSettings,
    consumer_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployments = [make_deployment() for _ in range(3)]
    control_topic = new_topic()
    producer = make_producer(kafka_settings)
    for deployment in deployments:
        key, value = control_message(deployment.pk, f"data{deployment.pk}").to_record()
        producer.produce(control_topic, key=key, value=value)
    producer.flush(10)
    with caplog.at_level(logging.WARNING, logger="kafka_control_logger.logger"):
        logger = start_logger(control_topic, group_id)
        wait_until(
            lambda: any("backend unreachable" in r.message for r in caplog.records),
            "the logger to find the backend down",
        )
    assert not Datasource.objects.exists()
    backend_server.start()
    wait_until(lambda: Datasource.objects.count() == 3, "all three datasources")
    logger.stop.set()
    logger.thread.join(30)
    assert committed(consumer_factory, group_id, control_topic) == 3
    # A second logger reading the topic from the start (a lost commit) records nothing twice.
    again = start_logger(control_topic, f"{group_id}-again")
    watcher = consumer_factory(f"{group_id}-again")
    wait_until(
        lambda: committed_offset(watcher, control_topic) == 3,
        "the second logger to get through the topic",
    )
    again.stop.set()
    assert sorted(Datasource.objects.values_list("deployment_id", flat=True)) == sorted(
        d.pk for d in deployments
    )
    assert Datasource.objects.count() == 3
