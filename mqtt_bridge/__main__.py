"""`python -m mqtt_bridge`: build settings and clients, then bridge until SIGTERM."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading

from prometheus_client import start_http_server

from kafkaml.kafka import KafkaSettings
from mqtt_bridge.bridge import Bridge
from mqtt_bridge.connection import connect, make_client
from mqtt_bridge.mapping import Route
from mqtt_bridge.metrics import BridgeMetrics
from mqtt_bridge.producer import make_bridge_producer
from mqtt_bridge.settings import BridgeSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        settings = BridgeSettings()
        if not settings.routes:
            raise ValueError("no routes: set KAFKAML_MQTT_ROUTES or KAFKAML_MQTT_ROUTES_FILE")
        routes = [Route.from_spec(spec) for spec in settings.routes]
        producer = make_bridge_producer(KafkaSettings(), settings.linger_ms)
        metrics = BridgeMetrics()
        if settings.metrics_port is not None:
            start_http_server(settings.metrics_port, registry=metrics.registry)
        client = make_client(settings)
    except Exception:
        logging.exception("the MQTT bridge could not start")
        return 1
    bridge = Bridge(
        routes,
        producer,
        settings.dead_letter_topic,
        client,
        metrics,
        tick_s=settings.batch_interval_ms / 1000,
    )
    # Each message makes a few short-lived containers (its parsed payload, record, delivery
    # callback): with the default gen-0 threshold (700) the cyclic collector ran every ~100
    # messages and cost a quarter of the bridge's CPU. What start-up made is not scanned again.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    connect(client, settings)
    try:
        bridge.run(stop)  # in this thread: reads MQTT, produces, acknowledges
    except Exception:
        logging.exception("the MQTT bridge stopped")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
