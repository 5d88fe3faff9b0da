"""A real Mosquitto broker for tests, examples and benchmarks, on a free port.

`Mosquitto(directory).start()` writes a config file (loopback listener, anonymous access,
unlimited in-flight and queued QoS 1 messages so a persistent session keeps everything while
the bridge is away), starts `mosquitto` and waits until it accepts connections.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in MOSQUITTO_PATHS if Path(path).exists()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One mosquitto process; a context manager that stops it on exit."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        password_file: Path | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        """`password_file` (mosquitto_passwd's) turns anonymous access off; `tls` is
        (CA certificate, server certificate, server key) for a TLS listener."""
        self.directory = directory
        self.port = port or free_port()
        self.password_file = password_file
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        # Started as root, mosquitto would switch to user `mosquitto`, who cannot read the
        # test's files (passwords, keys): it stays the user that runs the test.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1"]
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        lines += [
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 30.0) -> Mosquitto:
        """Raises RuntimeError when mosquitto is missing or does not listen within timeout_s."""
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (Debian package `mosquitto`)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "mosquitto.conf"
        config.write_text(self._config())
        log = (self.directory / "mosquitto.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start; see {self.directory}/mosquitto.log")
            time.sleep(0.05)
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl): (ca, cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, request = folder / "server.crt", folder / "server.key", folder / "server.csr"
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    commands = [
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-subj",
            "/CN=kafkaml test CA",
            "-days",
            "2",
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            request,
            "-subj",
            "/CN=localhost",
        ],
        [
            "x509",
            "-req",
            "-in",
            request,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            extensions,
        ],
    ]
    for command in commands:
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


def make_password_file(folder: Path, user: str, password: str) -> Path:
    """A mosquitto password file with one user (mosquitto_passwd)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "passwords"
    path.touch(mode=0o600)
    subprocess.run(
        ["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True
    )
    return path
