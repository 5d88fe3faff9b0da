"""`kafkaml.sandbox` on its own: the hostile probe as plain Python under bubblewrap, in the
validation form (no network, dies with its parent) and the job form (the host's network)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkaml.sandbox import MIB, PROJECT_ROOT, Sandbox, SandboxSettings, SandboxUnavailable
from kafkaml.testing import wait_until
from kafkaml.tests import hostile


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir like the backend's: a secret key and a database, for its user alone."""
    directory = tmp_path / "data"
    directory.mkdir(mode=0o700)
    (directory / "secret_key").write_text("the-backend-secret")
    (directory / "kafkaml.sqlite3").write_bytes(b"SQLite format 3\x00")
    return directory


@pytest.fixture
def listening() -> Iterator[int]:
    """A port listening on 127.0.0.1, standing for the backend."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def _probe(
    data_dir: Path, port: int, *, network: bool, die_with_parent: bool
) -> tuple[dict[str, Any], hostile.Targets]:
    outside = [PROJECT_ROOT / "kafkaml" / "hostile-written", data_dir / "x", Path("/etc/hostile")]
    target = hostile.targets(data_dir, port, outside, _secrets(data_dir))
    sandbox = Sandbox(max_file_bytes=64 * MIB, max_processes=64)
    launch = sandbox.launch(
        [sys.executable, "-c", hostile.probe_code(target)],
        env={"PATH": "/usr/bin:/bin", "KAFKAML_SECRET": "in-the-callers-env-only"},
        cwd=data_dir.parent,
        network=network,
        die_with_parent=die_with_parent,
        hidden=[data_dir],
    )
    result = subprocess.run(
        launch.argv, env=launch.env, cwd=launch.cwd, capture_output=True, text=True, timeout=120
    )
    for path in outside:
        assert not path.exists(), f"the sandbox wrote {path}"
    return hostile.report_from(result.stderr), target


def test_validation_sandbox_contains_every_attack_and_has_no_network(
    data_dir: Path, listening: int
) -> None:
    report, target = _probe(data_dir, listening, network=False, die_with_parent=True)

    hostile.assert_contained(report, network=False)
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def test_job_sandbox_contains_every_attack_but_shares_the_hosts_network(
    data_dir: Path, listening: int
) -> None:
    report, target = _probe(data_dir, listening, network=True, die_with_parent=False)

    hostile.assert_contained(report, network=True)
    assert report["connect_loopback"][0] == "ok"  # the brokers and the job API are on loopback
    wait_until(lambda: not hostile.lingering(target.sleep_marker), "the setsid() child to go")


def test_killing_the_sandboxs_process_group_ends_a_child_that_left_the_session(
    tmp_path: Path,
) -> None:
    marker = f"{500 + os.getpid() % 1000}.5"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); "
        f"time.sleep({marker})'])\n"
        "time.sleep(600)\n"
    )
    launch = Sandbox().launch(
        [sys.executable, "-c", code], env={}, cwd=tmp_path, network=True, die_with_parent=False
    )
    process = subprocess.Popen(launch.argv, env=launch.env, cwd=launch.cwd, start_new_session=True)
    wait_until(lambda: hostile.lingering(marker), "the setsid() child to start")

    os.killpg(process.pid, 9)  # what the local runner does after a stop's grace period
    process.wait()
    wait_until(lambda: not hostile.lingering(marker), "the setsid() child to go")


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
    assert (launch.argv, launch.env, launch.cwd) == (["/bin/true"], {"A": "1"}, str(tmp_path))
    assert "UNSANDBOXED" in caplog.text


def _secrets(data_dir: Path) -> list[Path]:
    return [data_dir / "secret_key", data_dir / "kafkaml.sqlite3"]


def _readable_by_others(path: Path) -> bool:
    """Whether a user with no relation to `path` can reach and read it."""
    path = path.resolve()
    folders = [*path.parents] if path.is_file() else [path, *path.parents]
    return all(p.stat().st_mode & 0o005 == 0o005 for p in folders) and os.access(path, os.R_OK)


def test_an_unprivileged_backend_user_gets_the_same_sandbox_in_one_stage(
    data_dir: Path, listening: int
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
    target = hostile.targets(data_dir, listening, outside, _secrets(data_dir))
    scripts = tempfile.TemporaryDirectory(prefix="kafkaml-sandbox-test-")  # pytest's is 0700
    script = Path(scripts.name) / "launch.py"
    script.write_text(
        "import subprocess, sys\nfrom pathlib import Path\nfrom kafkaml.sandbox import Sandbox\n"
        f"launch = Sandbox(max_file_bytes={64 * MIB}, max_processes=64).launch(\n"
        f"    [sys.executable, '-c', {hostile.probe_code(target)!r}], env={{}},\n"
        "    cwd=Path('/'), network=False, die_with_parent=True)\n"
        "sys.exit(subprocess.run(launch.argv, env=launch.env, cwd=launch.cwd).returncode)\n"
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
    hostile.assert_contained(report, network=False)
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
