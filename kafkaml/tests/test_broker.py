from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from kafkaml.kafka import KafkaSettings, make_admin
from kafkaml.local import BROKER_SCRIPT
from kafkaml.testing import broker_environment


def _broker(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BROKER_SCRIPT), command], env=env, text=True, capture_output=True, check=False
    )


def _jvm_options(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_starting_twice_keeps_one_broker_and_stop_ends_it(tmp_path: Path) -> None:
    env = broker_environment(_free_port(), tmp_path / "broker")
    env.pop("KAFKAML_BROKER_HEAP", None)  # the default heap is checked
    # Options that name no collector keep the default one.
    env["KAFKAML_BROKER_JVM_OPTS"] = "-XX:+UseNUMA -XX:+DisableExplicitGC"
    first = _broker("start", env)
    assert first.returncode == 0, first.stderr
    pid = int((tmp_path / "broker" / "broker.pid").read_text())
    try:
        options = set(_jvm_options(pid))
        assert {"-XX:+UseZGC", "-Xmx1g", "-XX:+UseNUMA", "-XX:+DisableExplicitGC"} <= options
        again = _broker("start", env)
        assert again.returncode == 0, again.stderr
        assert f"already running (pid {pid})" in again.stdout
        assert int((tmp_path / "broker" / "broker.pid").read_text()) == pid
    finally:
        stopped = _broker("stop", env)
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists()
    assert _broker("status", env).returncode == 3


def test_extra_jvm_options_and_properties_reach_the_broker(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **broker_environment(port, tmp_path / "broker"),
        "KAFKAML_BROKER_JVM_OPTS": "-XX:+UseG1GC -XX:MaxGCPauseMillis=50",
        "KAFKAML_BROKER_PROPERTIES": "log.retention.hours=2 transactional.id.expiration.ms=3600000",
    }
    started = _broker("start", env)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "broker" / "broker.pid").read_text())
    try:
        options = _jvm_options(pid)
        assert "-XX:MaxGCPauseMillis=50" in options
        assert "-XX:+UseG1GC" in options and "-XX:+UseZGC" not in options
        admin = make_admin(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"))
        resource = ConfigResource(ResourceType.BROKER, "1")
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["log.retention.hours"].value == "2"
        assert config["transactional.id.expiration.ms"].value == "3600000"
    finally:
        _broker("stop", env)


def test_start_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _broker("start", broker_environment(port, tmp_path / "broker"))
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr


def test_start_fails_clearly_without_java(tmp_path: Path) -> None:
    env = {
        **broker_environment(_free_port(), tmp_path / "broker"),
        "KAFKAML_JAVA": "/nonexistent/java",
    }
    result = _broker("start", env)
    assert result.returncode == 1
    assert "Java 17 or newer is needed" in result.stderr


def test_status_of_a_stopped_broker_says_so(tmp_path: Path) -> None:
    env = broker_environment(_free_port(), tmp_path / "broker")
    result = _broker("status", env)
    assert result.returncode == 3
    assert "not running" in result.stdout
