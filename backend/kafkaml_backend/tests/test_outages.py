"""Outage drills on the local runner: the broker SIGKILLed under a serving inference; real
replicas started through the REST API on a broker of the drill's own (never the shared one).

Reduced sizes by default; `KAFKAML_DRILL_FULL=1` runs the sizes of issue 14 (3 replicas,
6 partitions, a 60 s outage).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from rest_framework.test import APIClient

from backend.kafkaml_backend.tests.drills import (
    DEADLINE_S,
    FULL,
    PARTITIONS,
    RATE_PER_S,
    REPLICAS,
    Load,
    all_ready,
    answered_keys,
    assert_answered_exactly_once,
    inference,
    serve,
    serving,
)
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer
from kafkaml.local import BROKER_SCRIPT
from kafkaml.testing import TEST_CONSUMER_OVERRIDES, broker_environment, wait_until

OUTAGE_S = 60.0 if FULL else 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ScratchBroker:
    """A broker of one test, on ports of its own (`KAFKAML_DRILL_BROKER_PORT` and the next one,
    or free ones), that the test may kill and start again."""

    env: dict[str, str]
    directory: Path

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=f"127.0.0.1:{self.env['KAFKAML_BROKER_PORT']}")

    def start(self) -> None:
        done = self._script("start")
        assert done.returncode == 0, done.stderr

    def kill(self) -> None:
        """SIGKILL, as a crash or a pulled plug: no controlled shutdown."""
        pid = int((self.directory / "broker.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the broker to die")

    def stop(self) -> None:
        self._script("stop")

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(BROKER_SCRIPT), command], env=self.env, text=True,
                              capture_output=True, check=False)  # fmt: skip


@pytest.fixture
def scratch_broker(tmp_path: Path) -> Iterator[ScratchBroker]:
    given = os.environ.get("KAFKAML_DRILL_BROKER_PORT")
    port = int(given) if given else _free_port()
    env = broker_environment(port, tmp_path / "broker")
    env["KAFKAML_BROKER_CONTROLLER_PORT"] = str(port + 1 if given else _free_port())
    broker = ScratchBroker(env, tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_a_broker_killed_under_load_is_ridden_out_and_every_input_is_answered_once(
    api: APIClient,
    local_backend: str,
    trained: int,
    scratch_broker: ScratchBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = scratch_broker.settings
    monkeypatch.setenv("KAFKAML_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    source, sink = "drill-in", "drill-out"
    ensure_topics(make_admin(kafka), [source, sink], partitions=PARTITIONS)
    inference_id = serve(api, trained, source, sink)
    wait_until(lambda: serving(api, inference_id, REPLICAS), "every replica to serve", DEADLINE_S)
    load = Load(kafka, source, RATE_PER_S).start()

    time.sleep(5.0)
    scratch_broker.kill()
    time.sleep(OUTAGE_S)
    scratch_broker.start()
    time.sleep(5.0)
    sent = load.finish()

    answers = _read_committed(kafka)
    assert_answered_exactly_once(answered_keys(answers, sink, sent), sent)
    now = wait_until(lambda: all_ready(api, inference_id, REPLICAS), "every replica", DEADLINE_S)
    logs = api.get(f"/api/inferences/{inference_id}/logs").json()["logs"]
    assert now["restarts"] == 0, logs  # ridden out, not restarted
    assert now["status"] == "running"
    assert inference(api, inference_id)["error"] == ""


def _read_committed(kafka: KafkaSettings) -> Consumer:
    overrides = {k.replace(".", "_"): v for k, v in TEST_CONSUMER_OVERRIDES.items()}
    return make_consumer(kafka, f"drill-{time.monotonic_ns()}",
                         isolation_level="read_committed", **overrides)  # fmt: skip
