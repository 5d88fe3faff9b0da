"""Replicas as real processes: `python -m model_inference` started, killed, terminated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kafkaml.kafka import KafkaSettings
from kafkaml.local import PROJECT_ROOT


class Replica:
    """One `python -m model_inference` process of a spec-file inference, logging to a file."""

    def __init__(
        self, spec: Path, kafka_settings: KafkaSettings, name: str, log_dir: Path, **env: str
    ) -> None:
        self.name = name
        self.log = log_dir / f"replica-{name}.log"
        self._env = {
            **os.environ,
            "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "KAFKAML_INFERENCE_SPEC_FILE": str(spec),
            "KAFKAML_INFERENCE_REPLICA": name,
            "KAFKAML_INFERENCE_SESSION_TIMEOUT_MS": "6000",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model_inference"],
                env=self._env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no batch finished, no commit, no goodbye to the group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM and the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        """Make sure the process is gone (test clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
