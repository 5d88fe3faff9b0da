"""`kafkaml.sandbox` on its own: the hostile probe as plain Python under bubblewrap, in the
validation form (no network, dies with its parent) and the job form (its own network namespace
with routes to given endpoints only, `kafkaml.egress`)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kafkaml import egress
from kafkaml.egress import Endpoint
from kafkaml.sandbox import (
    MIB,
    Sandbox,
    SandboxSettings,
    SandboxUnavailable,
    _descendants,
    _running,
    carries,
    kill_group,
    kill_launch,
)
from kafkaml.settings import PROJECT_ROOT
from kafkaml.testing import wait_until
from kafkaml.tests import hostile


def _probe(
    data_dir: Path,
    port: int,
    *,
    network: bool | list[Endpoint],
    die_with_parent: bool,
    other_port: int = 0,
) -> tuple[dict[str, Any], hostile.Targets]:
    outside = [PROJECT_ROOT / "kafkaml" / "hostile-written", data_dir / "x", Path("/etc/hostile")]
    target = hostile.targets(data_dir, port, outside, hostile.secrets(data_dir), other_port)
    sandbox = Sandbox(max_file_bytes=64 * MIB, max_processes=64)
    launch = sandbox.launch(
        [sys.executable, "-c", hostile.probe_code(target)],
        env={"PATH": "/usr/bin:/bin", "KAFKAML_SECRET": "in-the-callers-env-only"},
        cwd=data_dir.parent,
        network=network,
        die_with_parent=die_with_parent,
        hidden=[data_dir],
    )
    try:
        result = subprocess.run(
            launch.argv, env=launch.env, cwd=launch.cwd, capture_output=True, text=True,
            timeout=120, pass_fds=launch.pass_fds,
        )  # fmt: skip
    finally:
        launch.close()
    for path in outside:
        assert not path.exists(), f"the sandbox wrote {path}"
    return hostile.report_from(result.stderr), target


def test_validation_sandbox_contains_every_attack_and_has_no_network(
    data_dir: Path, listening: int, other_listening: int
) -> None:
    report, target = _probe(
        data_dir, listening, network=False, die_with_parent=True, other_port=other_listening
    )

    hostile.assert_contained(report, network="none")
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def test_job_sandbox_contains_every_attack_and_reaches_its_routes_only(
    data_dir: Path, listening: int, other_listening: int
) -> None:
    """The listening port stands for the job API: reached; the other port on the same host
    address, an address off the machine and DNS are not."""
    route = [Endpoint("127.0.0.1", listening)]
    report, target = _probe(
        data_dir, listening, network=route, die_with_parent=False, other_port=other_listening
    )

    hostile.assert_contained(report, network="routes")
    assert report["connect_loopback"][0] == "ok", report["connect_loopback"]
    assert report["tcp_listening"][1] == f"['0100007F:{listening:04X}']"  # its one route
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def test_a_route_carries_a_host_name_and_megabytes_both_ways(tmp_path: Path) -> None:
    """The job dials the endpoint's own name (TLS verification needs it), which its /etc/hosts
    maps into the sandbox; 8 MiB go out and come back whole, and a half-close passes."""
    name = socket.gethostname()  # a name the host resolves (Debian: /etc/hosts), not localhost
    try:
        family, _, _, _, address = socket.getaddrinfo(name, 0, type=socket.SOCK_STREAM)[0]
    except OSError:
        pytest.skip(f"this machine does not resolve its own name {name!r}")
    with socket.socket(family) as server:
        server.bind((address[0], 0))
        server.listen()
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"print(socket.gethostbyname({name!r}))\n"
            f"s = socket.create_connection(({name!r}, {port}), 5)\n"
            "data = bytes(range(256)) * 32768\n"
            "s.sendall(data)\n"
            "s.shutdown(socket.SHUT_WR)\n"
            "back = b''\n"
            "while chunk := s.recv(1 << 20):\n"
            "    back += chunk\n"
            "print(len(back), back == data[::-1])\n"
        )
        process = _run_routed(code, tmp_path, Endpoint(name, port))
        conn, _ = server.accept()
        with conn:
            received = b""
            while chunk := conn.recv(1 << 20):
                received += chunk
            conn.sendall(received[::-1])
        out, err = process.communicate(timeout=60)
    print(out, err)
    assert out.split() == ["127.77.0.1", str(256 * 32768), "True"]


def _run_routed(code: str, cwd: Path, route: Endpoint) -> subprocess.Popen[str]:
    """`code` started in a job sandbox whose one route is `route`, its output piped."""
    launch = Sandbox().launch(
        [sys.executable, "-c", code], env={}, cwd=cwd, network=[route], die_with_parent=False
    )
    try:
        return subprocess.Popen(
            launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=launch.pass_fds,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    finally:
        launch.close()


def test_a_route_carries_an_address_off_the_loopback_and_a_port_below_1024(
    tmp_path: Path,
) -> None:
    """A broker advertised by IP address, a job API on a privileged port: this machine's own
    non-loopback address stands for them (no traffic leaves the machine)."""
    address = _own_address()
    if address is None or os.geteuid() != 0:
        pytest.skip("needs a non-loopback address of this machine, and root for a port < 1024")
    server = _listen_below_1024(address)
    with server:
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"print(socket.create_connection(({address!r}, {port}), 5).recv(5).decode())\n"
        )
        process = _run_routed(code, tmp_path, Endpoint(address, port))
        server.settimeout(60)
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello")
        out, err = process.communicate(timeout=60)
    print(address, port, out, err)
    assert out.strip() == "hello"


def _own_address() -> str | None:
    """This machine's address towards TEST-NET-1 (a UDP connect sends nothing), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def _listen_below_1024(address: str) -> socket.socket:
    for port in range(1023, 900, -1):
        server = socket.socket()
        try:
            server.bind((address, port))
        except OSError:
            server.close()
            continue
        server.listen()
        return server
    raise AssertionError("no free port below 1024")


def test_the_hosts_network_for_jobs_is_a_setting_that_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kafkaml.sandbox"):
        launch = Sandbox(job_network="host").launch(
            ["/bin/true"], env={}, cwd=tmp_path, network=[Endpoint("127.0.0.1", 9092)],
            die_with_parent=False,
        )  # fmt: skip
    assert "--share-net" in launch.argv and "kafkaml.egress" not in " ".join(launch.argv)
    assert "KAFKAML_SANDBOX_JOB_NETWORK=host" in caplog.text


def test_killing_the_sandboxs_process_group_ends_a_child_that_left_the_session(
    tmp_path: Path, listening: int
) -> None:
    """A job's launch: the forwarding process, the sandbox and a `setsid()` child all go."""
    marker = f"{500 + os.getpid() % 1000}.5"
    child = f"import os, time; os.setsid(); time.sleep({marker})"
    code = (
        "import socket, subprocess, sys, time\n"
        f"socket.create_connection(('127.0.0.1', {listening}), 5)\n"  # through its route
        f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "time.sleep(600)\n"
    )
    process, _ = _launched_in_own_session(code, tmp_path, listening)
    wait_until(lambda: _running_code(child), "the setsid() child to start")
    started = _descendants(process.pid)
    assert len(started) >= 4, started  # bwrap stages, the sandbox's init, the code, its child

    os.killpg(process.pid, 9)  # what the local runner does after a stop's grace period
    process.wait()
    wait_until(lambda: not _running_code(child), "the setsid() child to go")
    wait_until(lambda: not [p for p in started if Path(f"/proc/{p}").exists()], "all to go")


def _launched_in_own_session(
    code: str,
    cwd: Path,
    listening: int,
    *,
    sandbox: Sandbox | None = None,
    network: list[Endpoint] | bool | None = None,
    die_with_parent: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """`code` launched as the local runner launches a job: sandboxed, with a route to
    `listening` (or `network`), in a process group of its own; the process and the launch's
    marker."""
    launch = (sandbox or Sandbox()).launch(
        [sys.executable, "-c", code], env={}, cwd=cwd,
        network=[Endpoint("127.0.0.1", listening)] if network is None else network,
        die_with_parent=die_with_parent,
    )  # fmt: skip
    process = subprocess.Popen(
        launch.argv, env=launch.env, cwd=launch.cwd, start_new_session=True,
        pass_fds=launch.pass_fds,
    )  # fmt: skip
    launch.close()
    return process, launch.marker


def _chain(process: subprocess.Popen[bytes], code: str) -> list[int]:
    """Once `code` runs: the pids from the launch's first process down to the code's."""
    argv = [sys.executable.encode(), b"-c", code.encode(), b""]
    wait_until(lambda: argv in map(_argv, _descendants(process.pid)), "the code to start")
    chain = [process.pid, *_descendants(process.pid)]
    assert _argv(chain[-1]) == argv, [_argv(pid)[:1] for pid in chain]
    return chain


def _ended(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
    process.wait()


@pytest.mark.parametrize("form", ["job", "validation"])
def test_no_link_of_a_launch_killed_alone_leaves_what_lies_below_it_running(
    tmp_path: Path, listening: int, form: str
) -> None:
    """Nobody watches and nobody kills the group: the kernel alone ends the rest of the chain,
    whichever link dies (the forwarding process, a bwrap, an init). As root, the root bwrap's
    death signal could not reach the sandbox user's stages before it had a pid namespace."""
    code = f"import time; time.sleep({700 + os.getpid() % 1000}.5)"
    validation = form == "validation"
    links, link = None, 0
    while links is None or link < links:
        process, _ = _launched_in_own_session(
            code, tmp_path, listening, network=False if validation else None,
            die_with_parent=validation,
        )  # fmt: skip
        try:
            chain = _chain(process, code)
            links, name = len(chain) - 1, _argv(chain[link])[0]
            os.kill(chain[link], 9)
            wait_until(
                lambda c=chain: not [pid for pid in c if _running(pid)],  # type: ignore[misc]
                f"every process below link {link} ({name!r}) to go",
                timeout_s=30,
            )
        finally:
            _ended(process)
        link += 1
    assert links >= 2  # at least a bwrap and its init above the code


def test_a_netns_step_whose_forwarding_process_is_gone_starts_no_sandbox(tmp_path: Path) -> None:
    """The forwarding process died before the root bwrap armed its death signal: the netns
    step cannot hand the listeners over, and exits instead of starting the sandbox."""
    host_end, inner_end = socket.socketpair()
    host_end.close()
    marker = tmp_path / "started"
    plan = egress.plan([Endpoint("127.0.0.1", 9)])
    command = egress.netns_command(plan, ["touch", str(marker)], channel=inner_end.fileno())
    result = subprocess.run(
        command, pass_fds=[inner_end.fileno()], capture_output=True, text=True, timeout=60
    )
    inner_end.close()
    assert result.returncode == egress.NETNS_FAILED, result.stderr
    assert "cannot open the job's routes" in result.stderr
    assert not marker.exists()


def test_kill_group_ends_what_a_launch_left_when_its_first_process_died_alone(
    tmp_path: Path, listening: int
) -> None:
    """What the local runner does once a job's first process has ended: the rest of its
    sandbox, reparented but still in the job's process group, goes too. With the host's
    network (no forwarding process) the first process is the launch's outer bwrap, and nothing
    ties the stages below it to it: a job must not die with the backend that started it."""
    code = f"import time; time.sleep({600 + os.getpid() % 1000}.25)"
    process, _ = _launched_in_own_session(
        code, tmp_path, listening, sandbox=Sandbox(job_network="host")
    )
    try:
        chain = _chain(process, code)
        os.kill(process.pid, 9)
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # the launch ended, unreaped
        assert _running(chain[-1])
        killed = kill_group(process.pid)
        process.wait()
        assert not [pid for pid in chain if _running(pid)], killed
    finally:
        _ended(process)


def test_kill_launch_ends_a_launchs_remains_by_its_marker_and_nothing_else(
    tmp_path: Path, listening: int
) -> None:
    """What the reconciler does for a job whose first process ended while no backend watched:
    its pid is no clue any more; the marker in its processes' environment is."""
    code = f"import time; time.sleep({800 + os.getpid() % 1000}.75)"
    process, marker = _launched_in_own_session(
        code, tmp_path, listening, sandbox=Sandbox(job_network="host")
    )
    other, _ = _launched_in_own_session(
        code, tmp_path, listening, sandbox=Sandbox(job_network="host")
    )
    try:
        chain = _chain(process, code)
        others = _chain(other, code)
        assert all(carries(pid, marker) for pid in chain)
        assert not any(carries(pid, marker) for pid in others)
        os.kill(process.pid, 9)
        process.wait()  # reaped: its pid and group id may now be anyone's
        assert not carries(process.pid, marker)

        killed = kill_launch(marker)  # those below a killed init may go with it, unsignalled
        assert killed and set(killed) <= set(chain[1:])
        assert not [pid for pid in chain if _running(pid)]
        assert all(_running(pid) for pid in others)
    finally:
        _ended(process)
        _ended(other)


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _running_code(code: str) -> list[int]:
    """Pids of live processes running `python -c code` (not those that only mention it)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if entry.name.isdigit() and argv[-2:] == [code.encode(), b""]:
                found.append(int(entry.name))
    return found


def test_a_missing_bwrap_is_a_clear_error_naming_the_package_and_the_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap.*KAFKAML_SANDBOX=none"):
        Sandbox.from_settings(SandboxSettings(sandbox="bwrap"))


def test_mode_none_runs_the_command_as_is_and_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kafkaml.sandbox"):
        launch = Sandbox(mode="none").launch(
            ["/bin/true"], env={"A": "1"}, cwd=tmp_path, network=False, die_with_parent=True
        )
    assert (launch.argv, launch.cwd) == (["/bin/true"], str(tmp_path))
    assert launch.env == {"A": "1", "KAFKAML_LAUNCH": launch.marker} and launch.marker
    assert "UNSANDBOXED" in caplog.text


def _readable_by_others(path: Path) -> bool:
    """Whether a user with no relation to `path` can reach and read it."""
    path = path.resolve()
    folders = [*path.parents] if path.is_file() else [path, *path.parents]
    return all(p.stat().st_mode & 0o005 == 0o005 for p in folders) and os.access(path, os.R_OK)


@pytest.mark.parametrize("network", ["none", "routes"])
def test_an_unprivileged_backend_user_gets_the_same_sandbox_in_one_stage(
    data_dir: Path, listening: int, other_listening: int, network: str
) -> None:
    """As the backend would run it under its own (non-root) uid: bwrap without the root stage."""
    if os.geteuid() != 0:
        pytest.skip("runs as root to become another user; as non-root the other tests cover it")
    python = next(
        (
            Path(p)
            for p in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
            if Path(p).exists() and _readable_by_others(Path(p))
        ),
        None,
    )
    packages = Path(sysconfig.get_paths()["purelib"])
    if python is None or not _readable_by_others(packages / "pydantic_settings"):
        pytest.skip("no interpreter and packages an unprivileged user can read")
    outside = [PROJECT_ROOT / "kafkaml" / "hostile-written", data_dir / "x", Path("/etc/hostile")]
    target = hostile.targets(
        data_dir, listening, outside, hostile.secrets(data_dir), other_listening
    )
    routes = f"[Endpoint('127.0.0.1', {listening})]" if network == "routes" else "False"
    scripts = tempfile.TemporaryDirectory(prefix="kafkaml-sandbox-test-")  # pytest's is 0700
    script = Path(scripts.name) / "launch.py"
    script.write_text(
        "import subprocess, sys\nfrom pathlib import Path\nfrom kafkaml.sandbox import Sandbox\n"
        "from kafkaml.egress import Endpoint\n"
        f"launch = Sandbox(max_file_bytes={64 * MIB}, max_processes=64).launch(\n"
        f"    [sys.executable, '-c', {hostile.probe_code(target)!r}], env={{}},\n"
        f"    cwd=Path('/'), network={routes}, die_with_parent=True)\n"
        "sys.exit(subprocess.run(launch.argv, env=launch.env, cwd=launch.cwd,\n"
        "                        pass_fds=launch.pass_fds).returncode)\n"
    )
    script.chmod(0o644)
    Path(scripts.name).chmod(0o755)
    unprivileged = ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", "--"]
    with scripts:
        result = subprocess.run(
            [*unprivileged, str(python), str(script)],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{PROJECT_ROOT}:{packages}"},
            cwd="/", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    report = hostile.report_from(result.stderr)
    hostile.assert_contained(report, network="routes" if network == "routes" else "none")
    assert report["connect_loopback"][0] == ("ok" if network == "routes" else "refused")
    for path in outside:
        assert not path.exists(), f"the sandbox wrote {path}"


def test_files_handed_to_a_job_are_readable_inside_whatever_their_mode(
    data_dir: Path, tmp_path: Path
) -> None:
    """The Kafka TLS files of a job: shown as read-only copies, readable by the sandbox user."""
    key = data_dir / "client.key"
    key.write_text("-----BEGIN PRIVATE KEY-----")
    key.chmod(0o600)
    code = (
        "import sys\n"
        f"print(open({str(key)!r}).read())\n"
        f"try:\n    open({str(key)!r}, 'w')\nexcept OSError as e:\n    print('write refused', e)\n"
        f"print(sorted(__import__('os').listdir({str(data_dir)!r})))\n"
    )
    launch = Sandbox().launch(
        [sys.executable, "-c", code],
        env={},
        cwd=tmp_path,
        network=True,
        die_with_parent=False,
        files=[key],
    )
    try:
        result = subprocess.run(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            pass_fds=launch.pass_fds,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        launch.close()
    print(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0] == "-----BEGIN PRIVATE KEY-----"
    assert lines[1].startswith("write refused")
    assert lines[2] == "['client.key']"  # the file alone, not the rest of its folder
