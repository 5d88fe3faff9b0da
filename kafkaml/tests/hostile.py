"""Hostile user code for the sandbox tests: one probe that tries every attack the sandbox must
stop and reports, as JSON in the message of the exception it ends with, what it could see.

The same probe runs as plain Python under `kafkaml.sandbox`, as model code in the executor and
as model code in a real local training job; each test asserts on the report. Nothing in it
sends traffic off this machine: it connects to 127.0.0.1, and to an address off the machine
(192.0.2.1, TEST-NET-1) and a DNS name only where it sees no interface but its own loopback, so
that nothing can leave.

It also holds the set-up the hostile suites share: the `data_dir`, `listening` and
`other_listening` fixtures (a conftest.py imports them) and `secrets(data_dir)`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

MARKER = "HOSTILE-REPORT "
# A 5 GB write, in 16 MiB blocks: the file size limit must stop it long before the end.
BIG_WRITE_BYTES = 5 * 10**9


@dataclass(frozen=True)
class Targets:
    """What the probe attacks: paths and a process on the host, a listening loopback port."""

    data_dir: str
    secrets: list[str]
    backend_pid: int
    port: int
    outside: list[str]
    # A sleep length no other process uses, so the test finds the setsid() child by it.
    sleep_marker: str
    # Another port listening on the host's 127.0.0.1 that no sandbox may reach (0: none).
    other_port: int = 0


def targets(
    data_dir: Path, port: int, outside: list[Path], secrets: list[Path], other_port: int = 0
) -> Targets:
    """Targets naming this process as the backend (its environ holds the test's secrets)."""
    marker = f"{400 + os.getpid() % 1000}.{time.monotonic_ns() % 97 + 1}"
    files = [str(path) for path in secrets]
    outside_ = [str(p) for p in outside]
    return Targets(str(data_dir), files, os.getpid(), port, outside_, marker, other_port)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir like the backend's: a secret key and a database, for its user alone."""
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    (directory / "secret_key").write_text("the-backend-secret")
    (directory / "kafkaml.sqlite3").write_bytes(b"SQLite format 3\x00")
    return directory


def secrets(data_dir: Path) -> list[Path]:
    """The files of a `data_dir` fixture that no user code may read."""
    return [data_dir / "secret_key", data_dir / "kafkaml.sqlite3"]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port listening on 127.0.0.1, standing for the backend (or a job's one route)."""
    with _listening_port() as port:
        yield port


@pytest.fixture
def other_listening() -> Iterator[int]:
    """Another port listening on 127.0.0.1, standing for any other service of the machine."""
    with _listening_port() as port:
        yield port


@contextmanager
def _listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


_PROBE = r"""
import json as _j, os as _o, socket as _s, subprocess as _sp, sys as _sys, time as _t
_T = _j.loads(%(targets)r)
_R = {"uid": _o.getuid(), "gid": _o.getgid(), "ppid": _o.getppid()}
def _try(name, step):
    try:
        _R[name] = ["ok", repr(step())[:160]]
    except BaseException as e:
        _R[name] = ["refused", (type(e).__name__ + ": " + str(e))[:160]]
def _read(path, n=32):
    with open(path, "rb") as f:
        return f.read(n)
def _write_big():
    block, done = b"x" * (16 << 20), 0
    with open(_o.path.join(_o.environ.get("TMPDIR", "/tmp"), "big.bin"), "wb") as f:
        while done < %(big)d:
            f.write(block)
            f.flush()
            done += len(block)
    return done
def _forks():
    kids = 0
    try:
        for _ in range(200):
            pid = _o.fork()
            if pid == 0:
                _t.sleep(5)
                _o.kill(_o.getpid(), 9)  # the executor turns os._exit into an exception
            kids += 1
    except OSError as e:
        raise OSError(e.errno, "stopped after %%d forks: %%s" %% (kids, e.strerror)) from None
    return kids
def _write(path):
    with open(path, "w") as f:
        f.write("written by hostile model code")
for _i, _p in enumerate(_T["secrets"]):
    _try("read_secret_%%d" %% _i, lambda: _read(_p))
_try("list_data_dir", lambda: _o.listdir(_T["data_dir"]))
_try("read_backend_environ", lambda: _read("/proc/%%d/environ" %% _T["backend_pid"], 200))
_R["processes"] = sorted(int(p) for p in _o.listdir("/proc") if p.isdigit())
_R["interfaces"] = [name for _, name in _s.if_nameindex()]
_try("connect_loopback", lambda: _s.create_connection(("127.0.0.1", _T["port"]), 2).close())
if _T["other_port"]:
    _try("connect_other_port",
         lambda: _s.create_connection(("127.0.0.1", _T["other_port"]), 2).close())
_try("etc_hosts", lambda: _read("/etc/hosts", 400).decode())
_try("tcp_listening", lambda: [l.split()[1] for l in open("/proc/net/tcp").read().splitlines()[1:]
                               if l.split()[3] == "0A"])
if _R["interfaces"] == ["lo"]:  # nothing can leave the machine: try to
    _try("connect_off_machine", lambda: _s.create_connection(("192.0.2.1", 9092), 2).close())
    _try("resolve_dns", lambda: _s.getaddrinfo("kafkaml-probe.example.com", 443))
for _i, _p in enumerate(_T["outside"]):
    _try("write_outside_%%d" %% _i, lambda: _write(_p))
_try("write_5gb", _write_big)
_try("setsid_child", lambda: _sp.Popen(
    [_sys.executable, "-c", "import os, time; os.setsid(); time.sleep(%%s)" %% _T["sleep_marker"]],
    start_new_session=True).pid)
_try("kill_parent", lambda: _o.kill(_o.getppid(), 9))
_try("fork_200", _forks)
_t.sleep(0.5)
_R["alive_after_kill_parent"] = True
raise RuntimeError(%(marker)r + _j.dumps(_R))
"""


def probe_code(target: Targets) -> str:
    """Python source that runs every attack and raises RuntimeError carrying the report."""
    values = {"targets": json.dumps(asdict(target)), "big": BIG_WRITE_BYTES, "marker": MARKER}
    return _PROBE % values


def report_from(text: str) -> dict[str, Any]:
    """The probe's report found in `text` (an error message or a log); KeyError if none."""
    match = re.search(re.escape(MARKER) + r"(\{.*\})", text)
    if match is None:
        raise KeyError(f"no hostile report in: {text[-2000:]}")
    report: dict[str, Any] = json.loads(match.group(1))
    print("what the hostile code could see:", json.dumps(report, indent=1))
    return report


def refused(report: dict[str, Any], name: str) -> bool:
    """Whether the attack `name` failed inside the sandbox."""
    return bool(report[name][0] == "refused")


def lingering(sleep_marker: str) -> list[int]:
    """Host pids of processes whose command line holds the probe's setsid() child's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"time.sleep({sleep_marker})".encode() in cmdline:
            found.append(int(entry.name))
    return found


def assert_contained(report: dict[str, Any], *, network: Literal["none", "routes", "host"]) -> None:
    """Every attack failed. `network`: what the sandbox was given: `none` (validation: not
    even the loopback connect succeeds), `routes` (a job: its own loopback, where only its
    routes listen; the test judges `connect_loopback`) or `host` (the host's network)."""
    assert report["uid"] == 65534 and report["gid"] == 65534, report
    attacks = ["list_data_dir", "read_backend_environ"]
    attacks += [key for key in report if key.startswith(("read_secret_", "write_outside_"))]
    assert "read_secret_0" in attacks and "write_outside_0" in attacks, report
    for name in attacks:
        assert refused(report, name), (name, report[name])
    assert refused(report, "write_5gb"), report["write_5gb"]
    assert "File too large" in report["write_5gb"][1] or "No space" in report["write_5gb"][1]
    assert refused(report, "fork_200"), report["fork_200"]
    assert max(report["processes"]) < 50, "the sandbox sees processes other than its own"
    assert report["alive_after_kill_parent"]
    if network == "host":
        return
    assert report["interfaces"] == ["lo"], report["interfaces"]  # its own, not the host's
    off_machine = ["connect_off_machine", "resolve_dns"]
    others = ["connect_other_port"] if "connect_other_port" in report else []
    for name in [*off_machine, *others] + (["connect_loopback"] if network == "none" else []):
        assert refused(report, name), (name, report[name])
