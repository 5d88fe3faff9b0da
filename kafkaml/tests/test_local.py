from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kafkaml import local
from kafkaml.kafka import KafkaSettings, ensure_topics, make_admin, make_consumer, make_producer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stack_pids(settings: local.LocalSettings) -> list[int]:
    """Every live process whose command line mentions this stack's cache folder."""
    marker = str(settings.cache_dir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_stack_stops_without_leftovers_and_keeps_broker_data_across_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKAML_BROKER_LIB", str(local.PROJECT_ROOT / ".cache" / "kafka-lib"))
    settings = local.LocalSettings(
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "data",
        broker_port=_free_port(),
        backend_port=_free_port(),
    )
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{settings.broker_port}")
    lines: list[str] = []
    try:
        local.up(settings, out=lines.append)
        assert local.status(settings, out=lines.append)
        ensure_topics(make_admin(kafka), ["kept"], partitions=1)
        producer = make_producer(kafka)
        producer.produce("kept", key=b"k", value=b"survives a restart")
        assert producer.flush(30) == 0

        local.down(settings, out=lines.append)
        assert _stack_pids(settings) == []
        assert not _port_open(settings.broker_port)

        local.up(settings, out=lines.append)
        consumer = make_consumer(kafka)
        consumer.subscribe(["kept"])
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None:
                break
        consumer.close()
        assert message is not None and message.value() == b"survives a restart"
    finally:
        local.down(settings, out=lines.append)
    assert _stack_pids(settings) == []
