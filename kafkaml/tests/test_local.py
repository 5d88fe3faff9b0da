from __future__ import annotations

import json
import os
import shutil
import socket
import urllib.request
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but the process table.
    return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_stack_serves_the_api_stops_without_leftovers_and_keeps_broker_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKAML_BROKER_LIB", str(local.PROJECT_ROOT / ".cache" / "kafka-lib"))
    monkeypatch.setenv("KAFKAML_ADMIN_PASSWORD", "local-stack-test")
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
        assert local.status(settings, out=lines.append), lines
        health_url = f"{local.backend_url(settings)}/api/health"
        with urllib.request.urlopen(health_url, timeout=10) as response:
            assert json.load(response)["status"] == "ok"
        assert any("admin" in line for line in lines), lines
        if shutil.which("npm"):  # `make run` built the web UI; the address it prints serves it
            with urllib.request.urlopen(f"{local.backend_url(settings)}/", timeout=10) as page:
                assert b'<div id="root">' in page.read()
        # Its own gunicorn control socket, in its own state folder (not ~/.gunicorn).
        assert (settings.state_dir / "gunicorn.ctl").is_socket()
        ensure_topics(make_admin(kafka), ["kept"], partitions=1)
        producer = make_producer(kafka)
        producer.produce("kept", key=b"k", value=b"survives a restart")
        assert producer.flush(30) == 0

        pids = local.running_pids(settings)
        assert len(pids) >= 4, pids  # supervisord, backend, control logger, broker
        local.down(settings, out=lines.append)
        assert [pid for pid in pids if _alive(pid)] == []
        assert not _port_open(settings.broker_port)
        assert not _port_open(settings.backend_port)

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
        pids = local.running_pids(settings)
    finally:
        local.down(settings, out=lines.append)
    assert [pid for pid in pids if _alive(pid)] == []
