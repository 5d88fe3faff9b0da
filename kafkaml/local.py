"""The local stack: the Kafka broker plus every kafkaml service, on this machine.

`kafkaml local up` starts the broker (deploy/local/kafka/broker.sh) and hands the Python services
to supervisord, which keeps each in its own process group, restarts a crashed one and stops them
all together. `down` ends them and the broker; `status` reports each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from kafkaml import frontend
from kafkaml.settings import PROJECT_ROOT as PROJECT_ROOT  # for the stack's modules, tests, bench
from kafkaml.settings import data_dir_field, env_config

BROKER_SCRIPT = PROJECT_ROOT / "deploy" / "local" / "kafka" / "broker.sh"
# Named explicitly: a caller's DJANGO_SETTINGS_MODULE (a test run's) must not leak into the stack.
BACKEND_SETTINGS = "backend.kafkaml_backend.settings"


class LocalSettings(BaseSettings):
    """Where the local stack keeps its files and which ports it listens on."""

    model_config = env_config()

    cache_dir: Path = Field(
        default=PROJECT_ROOT / ".cache",
        description="Folder for downloaded tools, the local broker's data and the stack's state.",
    )
    data_dir: Path = data_dir_field()
    broker_port: int = Field(default=9092, description="Port of the local Kafka broker.")
    backend_port: int = Field(default=8000, description="Port of the local backend (API and UI).")
    local_mqtt_bridge: bool = Field(
        default=False,
        description="Also run the MQTT bridge in the local stack (routes: KAFKAML_MQTT_ROUTES).",
    )

    @property
    def state_dir(self) -> Path:
        return self.cache_dir / "local"


@dataclass(frozen=True)
class Program:
    """One long-running service of the local stack."""

    name: str
    command: Sequence[str]
    address: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    # Called after start; returns True once the service is ready to be used.
    ready: Callable[[], bool] | None = None


class LocalStackError(RuntimeError):
    """The local stack could not be started or stopped; the message says why."""


def programs(settings: LocalSettings) -> list[Program]:
    """The services `kafkaml local up` supervises, in start order."""
    url = backend_url(settings)
    common = {
        "DJANGO_SETTINGS_MODULE": BACKEND_SETTINGS,
        "KAFKAML_RUNNER": "local",
        "KAFKAML_DATA_DIR": str(settings.data_dir),
        "KAFKAML_BACKEND_URL": url,
        "KAFKAML_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{settings.broker_port}",
    }
    python = sys.executable
    bridge = Program(
        name="mqtt-bridge",
        # The KAFKAML_MQTT_* settings reach it through supervisord's environment.
        command=[python, "-m", "mqtt_bridge"],
        environment={"KAFKAML_KAFKA_BOOTSTRAP_SERVERS": common["KAFKAML_KAFKA_BOOTSTRAP_SERVERS"]},
    )
    return [
        Program(
            name="backend",
            command=[
                python,
                "-m",
                "gunicorn",
                "backend.kafkaml_backend.wsgi:application",
                "--bind",
                f"127.0.0.1:{settings.backend_port}",
                "--workers",
                "2",
                # Threads: a request that waits (a validation runs up to its time limit) holds
                # one thread, not a whole worker, so /api/health and the rest still answer.
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--timeout",
                "300",
                # Gunicorn's default control socket is one per user (~/.gunicorn): each stack
                # keeps its own beside its other state, so two stacks never share one.
                "--control-socket",
                str(settings.state_dir / "gunicorn.ctl"),
            ],
            address=f"{url}/api/docs/",
            environment=common,
            ready=lambda: _http_ok(f"{url}/api/health"),
        ),
        Program(
            name="control-logger",
            command=[python, "-m", "kafka_control_logger"],
            environment={
                **common,
                "KAFKAML_SERVICE_TOKEN_FILE": str(settings.data_dir / "service_token"),
            },
        ),
        *([bridge] if settings.local_mqtt_bridge else []),
    ]


def backend_url(settings: LocalSettings) -> str:
    return f"http://127.0.0.1:{settings.backend_port}"


def prepare_backend(settings: LocalSettings, out: Callable[[str], None]) -> None:
    """Migrate the database, make sure the admin user exists, issue the logger's token.

    Raises LocalStackError with the command's output when a step fails.
    """
    # The database, secret key, service token, artifacts and logs: the backend's user alone.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    _manage(settings, "migrate", "--noinput")
    out(_manage(settings, "ensure_admin"))
    _manage(settings, "issue_service_token", "--output", str(settings.data_dir / "service_token"))


def _manage(settings: LocalSettings, *args: str) -> str:
    """Run a backend management command for this stack; its output, or LocalStackError."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": BACKEND_SETTINGS,
        "KAFKAML_DATA_DIR": str(settings.data_dir),
    }
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "backend" / "manage.py"), *args],
        env=env, text=True, capture_output=True, check=False, cwd=PROJECT_ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        raise LocalStackError(
            f"manage.py {args[0]} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout.strip()


def broker(command: str, settings: LocalSettings) -> subprocess.CompletedProcess[str]:
    """Run broker.sh with the stack's cache folder and port."""
    env = {
        **os.environ,
        "KAFKAML_CACHE_DIR": str(settings.cache_dir),
        "KAFKAML_BROKER_PORT": str(settings.broker_port),
    }
    return subprocess.run(
        ["bash", str(BROKER_SCRIPT), command], env=env, text=True, capture_output=True, check=False
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def scratch_broker(
    port: int, directory: Path, environment: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A broker for tests and benchmarks on `port`, data in `directory`; yields host:port.

    `environment` adds broker.sh settings (e.g. KAFKAML_BROKER_SECURITY and its files).
    Reuses a broker already running from that directory; stops it afterwards only when this
    call started it. Raises LocalStackError when it cannot start.
    """
    env = {
        **os.environ,
        "KAFKAML_BROKER_PORT": str(port),
        "KAFKAML_BROKER_DIR": str(directory),
        "KAFKAML_CACHE_DIR": str(PROJECT_ROOT / ".cache"),
        **(environment or {}),
    }
    script = ["bash", str(BROKER_SCRIPT)]
    was_running = (
        subprocess.run([*script, "status"], env=env, capture_output=True, check=False).returncode
        == 0
    )
    started = subprocess.run(
        [*script, "start"], env=env, text=True, capture_output=True, check=False
    )
    if started.returncode != 0:
        raise LocalStackError(started.stderr.strip() or started.stdout.strip())
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if not was_running:
            subprocess.run([*script, "stop"], env=env, capture_output=True, check=False)


def build_web_ui(out: Callable[[str], None]) -> None:
    """Build the web UI when its sources changed (npm ci / vite build, each only when needed).

    Without npm the stack still starts: the API works and `/` says how to build the UI.
    """
    if shutil.which("npm") is None:
        out("web UI: npm not found, not built (install Node.js 20+ for the UI at /)")
        return
    try:
        frontend.build(out=out)
    except frontend.FrontendBuildError as error:
        raise LocalStackError(str(error)) from error


def up(settings: LocalSettings, out: Callable[[str], None] = print) -> None:
    """Start the broker and every program; idempotent. Raises LocalStackError on failure."""
    build_web_ui(out)
    result = broker("start", settings)
    if result.returncode != 0:
        raise LocalStackError(result.stderr.strip() or result.stdout.strip())
    out(result.stdout.strip())
    services_up(settings, out)
    out(f"kafkaml is up: open {backend_url(settings)}/ and sign in as admin (API: /api/docs/)")


def services_up(settings: LocalSettings, out: Callable[[str], None] = print) -> None:
    """Start every program against the broker already listening on `settings.broker_port`
    (tests run the stack on their session's broker this way). Raises LocalStackError."""
    progs = programs(settings)
    if progs:
        prepare_backend(settings, out)
        _supervisord_start(settings, progs)
        for program in progs:
            _wait_ready(settings, program)
            out(f"{program.name}: running" + (f" at {program.address}" if program.address else ""))


def down(settings: LocalSettings, out: Callable[[str], None] = print) -> None:
    """Stop every program and then the broker; nothing is left running."""
    services_down(settings, out)
    result = broker("stop", settings)
    out(result.stdout.strip() or result.stderr.strip())


def services_down(settings: LocalSettings, out: Callable[[str], None] = print) -> None:
    """Stop the jobs and every program; the broker is left running."""
    if (settings.data_dir / "service_token").exists():  # the backend was prepared: jobs may run
        out(_manage(settings, "stop_jobs"))
    pid = _supervisord_pid(settings)
    if pid is not None:
        _supervisorctl(settings, "shutdown")
        _wait_gone(pid, timeout=60)
        out("services: stopped")


def status(settings: LocalSettings, out: Callable[[str], None] = print) -> bool:
    """Print the state of the broker and each program; True when everything runs."""
    result = broker("status", settings)
    out(result.stdout.strip())
    healthy = result.returncode == 0
    if programs(settings):
        if _supervisord_pid(settings) is None:
            out("services: not running")
            return False
        report = _supervisorctl(settings, "status")
        out(report.stdout.strip())
        healthy = healthy and report.returncode == 0
    return healthy


def _supervisor_config(settings: LocalSettings, progs: Sequence[Program]) -> str:
    state = settings.state_dir
    lines = [
        "[supervisord]",
        f"logfile={state / 'supervisord.log'}",
        f"pidfile={state / 'supervisord.pid'}",
        f"childlogdir={state / 'logs'}",
        f"directory={PROJECT_ROOT}",
        "",
        "[unix_http_server]",
        f"file={state / 'supervisor.sock'}",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{state / 'supervisor.sock'}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for program in progs:
        env = ",".join(f'{key}="{value}"' for key, value in program.environment.items())
        lines += [
            "",
            f"[program:{program.name}]",
            "command=" + " ".join(_quote(part) for part in program.command),
            "autorestart=unexpected",
            "startsecs=2",
            "stopasgroup=true",
            "killasgroup=true",
            "stopwaitsecs=20",
            "redirect_stderr=true",
            f"stdout_logfile={state / 'logs' / (program.name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
        ]
        if env:
            lines.append(f"environment={env}")
    return "\n".join(lines) + "\n"


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part else part


def _supervisord_start(settings: LocalSettings, progs: Sequence[Program]) -> None:
    state = settings.state_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    config = state / "supervisord.conf"
    config.write_text(_supervisor_config(settings, progs))
    if _supervisord_pid(settings) is not None:
        _supervisorctl(settings, "update")
        _supervisorctl(settings, "start", "all")
        return
    supervisord = (
        shutil.which("supervisord", path=str(Path(sys.executable).parent)) or "supervisord"
    )
    result = subprocess.run(
        [supervisord, "-c", str(config)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise LocalStackError(f"supervisord did not start: {result.stderr.strip()}")


def _supervisorctl(settings: LocalSettings, *args: str) -> subprocess.CompletedProcess[str]:
    ctl = shutil.which("supervisorctl", path=str(Path(sys.executable).parent)) or "supervisorctl"
    config = settings.state_dir / "supervisord.conf"
    return subprocess.run(
        [ctl, "-c", str(config), *args], capture_output=True, text=True, check=False
    )


def running_pids(settings: LocalSettings) -> list[int]:
    """Pids of supervisord, every program it runs, and the broker (for checks after `down`)."""
    pids = []
    supervisor = _supervisord_pid(settings)
    if supervisor is not None:
        pids.append(supervisor)
        listing = _supervisorctl(settings, "pid", "all").stdout.split()
        pids += [int(pid) for pid in listing if pid.isdigit() and pid != "0"]
    broker_pid = settings.cache_dir / "kafka" / "broker.pid"
    if broker_pid.exists():
        pids.append(int(broker_pid.read_text().strip()))
    return pids


def _supervisord_pid(settings: LocalSettings) -> int | None:
    pidfile = settings.state_dir / "supervisord.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _wait_ready(settings: LocalSettings, program: Program, timeout: float = 90.0) -> None:
    """Wait until supervisord reports the program RUNNING and its readiness check passes.

    Raises LocalStackError, with the end of the program's log, when it fails to start.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = _program_state(settings, program.name)
        if state in ("FATAL", "BACKOFF", "EXITED"):
            raise LocalStackError(
                f"{program.name} did not start ({state}):\n{_log_tail(settings, program)}"
            )
        if state == "RUNNING" and (program.ready is None or program.ready()):
            return
        if time.monotonic() > deadline:
            raise LocalStackError(
                f"{program.name} did not become ready within {timeout:.0f}s "
                f"({state}):\n{_log_tail(settings, program)}"
            )
        time.sleep(0.25)


def _program_state(settings: LocalSettings, name: str) -> str:
    fields = _supervisorctl(settings, "status", name).stdout.split()
    return fields[1] if len(fields) > 1 else "UNKNOWN"


def _log_tail(settings: LocalSettings, program: Program, lines: int = 20) -> str:
    log = settings.state_dir / "logs" / f"{program.name}.log"
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise LocalStackError(f"supervisord (pid {pid}) did not exit within {timeout:.0f}s")
