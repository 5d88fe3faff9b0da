"""`python -m kafka_control_logger`: build settings and clients, then run until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from prometheus_client import start_http_server

from kafka_control_logger.logger import (
    BackendClient,
    DeadLetters,
    LoggerMetrics,
    RetryPolicy,
    run,
)
from kafka_control_logger.settings import LoggerSettings
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        settings = LoggerSettings()
        kafka = KafkaSettings()
        backend = BackendClient(
            settings.backend_url, settings.token(), timeout_s=settings.backend_timeout_s
        )
        # Sinks may not have created the control topic yet; subscribing needs it to exist.
        ensure_topics(make_admin(kafka), [settings.control_topic, settings.dead_letter_topic])
        consumer = make_consumer(kafka, settings.control_logger_group_id)
        metrics = LoggerMetrics()
        if settings.control_logger_metrics_port:
            start_http_server(settings.control_logger_metrics_port, registry=metrics.registry)
        dead_letters = DeadLetters(make_producer(kafka), settings.dead_letter_topic, metrics)
        policy = RetryPolicy(settings.backend_retry_max_s, settings.control_logger_max_failures)
    except Exception:
        logging.exception("the control logger could not start")
        return 1
    try:
        run(consumer, backend, dead_letters, settings.control_topic, stop, policy)
    except Exception:
        logging.exception("the control logger stopped")
        return 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
