"""The one place that decides how user model code is started on this machine: bubblewrap.

Validation (mlcode_executor) and every local training and inference job start their process
through `Sandbox.launch`, which wraps the command in `bwrap`:

- an unprivileged user: uid/gid 65534 (nobody) inside a new user namespace. When the backend
  runs as root, the sandbox is also nobody on the host: a first, root `bwrap` only assembles
  the read-only file view (so paths under /root stay reachable), `setpriv` drops to the
  sandbox uid with no groups, and the second `bwrap` runs unprivileged;
- its own mount, pid, ipc, uts, cgroup and network namespaces, a fresh /proc (no other process
  is visible) and no interface but its own loopback. Validation has no network at all. A job
  (`network=` its endpoints: the brokers as the cluster advertises them and the job API) gets
  one route per endpoint and nothing else: a listener on its loopback at the address the job
  dials (host names through the sandbox's own read-only /etc/hosts), forwarded by the launch's
  own process outside the sandbox to that one fixed destination (`kafkaml.egress`, whose netns
  step makes the network namespace just before the unprivileged bwrap, which keeps it). That
  process leads the job's process group and the sandbox dies with it; no socket file exists.
  `KAFKAML_SANDBOX_JOB_NETWORK=host` (debugging; it warns on every launch) or `network=True`
  share the host's network namespace instead;
- a file view of only the interpreter, the virtual environment and the project's worker
  packages, all read-only, plus a private tmpfs at /tmp (HOME, TMPDIR, cwd) that vanishes
  with the sandbox: no data dir, database, secret key, service token or backend code;
- RLIMIT_FSIZE and RLIMIT_NPROC, set by `prlimit` inside the sandbox on the user's command
  (counted per sandbox, as each has its own user namespace), no core files, no nested user
  namespaces (`--disable-userns`);
- validation: `--die-with-parent` and `--new-session`; jobs are not tied to the backend, so
  they survive a backend restart (the runner reconciles them), and keep their session, so a
  SIGTERM to their process group reaches the job's own handler (with routes, the sandbox dies
  with the forwarding process, the group's leader). SIGTERM is ignored by the bwrap processes
  themselves (`env --ignore-signal`) and the forwarder, so a graceful stop is not cut short;
  SIGKILL to the group ends the pid namespace's init, and the kernel then kills everything in
  the sandbox, `setsid()` or not;
- no orphans: when any one link of a job's chain dies alone (the forwarding process, a bwrap
  process, an init), everything below it dies too, whether or not a runner watches. Each bwrap
  has `--die-with-parent`, and the root stage has a pid namespace of its own (see
  `_outer_as_root`: the kernel does not let a parent-death signal cross from that root bwrap to
  the sandbox user). The netns step hands its listeners to the forwarding process before it
  starts the sandbox: if that process died before the root bwrap armed its death signal, the
  hand-over fails and the step exits. Left to the runner (`kill_group`, `kill_launch`): a
  launch whose root bwrap leads the group itself (`KAFKAML_SANDBOX_JOB_NETWORK=host`), and the
  microseconds between a bwrap's fork of its init and the init arming its death signal.

`KAFKAML_SANDBOX=none` runs the command directly with the caller's rights: only for
development on a machine without bubblewrap; it logs a warning on every launch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from kafkaml import egress
from kafkaml.egress import Endpoint
from kafkaml.settings import PROJECT_ROOT, env_config

log = logging.getLogger(__name__)

# The project's packages that user code runs under; the backend, docs and .cache stay unseen.
WORKER_PACKAGES = ("kafkaml", "mlcode_executor", "model_training", "model_inference")
# Files under /etc that the interpreter, libc and Kafka clients read (resolver, TLS roots).
_ETC = (
    "/etc/ld.so.cache",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
)
SCRATCH = "/tmp"
MIB = 1024 * 1024
# Every process of a launch has `LAUNCH_VARIABLE=<its marker>` in its environment (`Launch.marker`).
LAUNCH_VARIABLE = "KAFKAML_LAUNCH"


class SandboxUnavailable(OSError):
    """The configured sandbox cannot run here (e.g. `bwrap` is not installed). An OSError, as
    a missing interpreter would be: the process could not start."""


class SandboxSettings(BaseSettings):
    """How user model code is isolated on this machine (validation and local jobs)."""

    model_config = env_config()

    sandbox: Literal["bwrap", "none"] = Field(
        default="bwrap",
        description="How user code is isolated: `bwrap` (bubblewrap) or `none` (unsafe, dev only).",
    )
    sandbox_uid: int = Field(
        default=65534, ge=1, description="User id that user code runs as (65534: nobody)."
    )
    sandbox_gid: int = Field(
        default=65534, ge=1, description="Group id that user code runs as (65534: nogroup)."
    )
    sandbox_max_file_bytes: int = Field(
        default=2048 * MIB,
        gt=0,
        description="Largest file user code may write (RLIMIT_FSIZE), and a job's scratch size.",
    )
    sandbox_max_processes: int = Field(
        default=128,
        ge=16,
        description="Processes and threads one sandbox may hold at once (RLIMIT_NPROC).",
    )
    sandbox_job_network: Literal["brokers", "host"] = Field(
        default="brokers",
        description="What a local job may reach: `brokers` (the brokers and the job API only) "
        "or `host` (the host's whole network; for debugging, logs a warning).",
    )


@dataclass(frozen=True)
class Launch:
    """What to hand to `subprocess.Popen`: the command line, its environment and folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    # File descriptors the command reads copied files from: pass them (`pass_fds`), then close.
    pass_fds: tuple[int, ...] = ()
    # A random id in `env` (LAUNCH_VARIABLE), which every process of the launch inherits: what
    # tells its processes from others that reuse their pids (`carries`, `kill_launch`).
    marker: str = ""

    def close(self) -> None:
        """Close `pass_fds` in this process (after Popen, which gave the child its copies)."""
        for fd in self.pass_fds:
            os.close(fd)


@dataclass(frozen=True)
class Sandbox:
    """Builds sandboxed command lines; see the module docstring for what each mode holds."""

    mode: Literal["bwrap", "none"] = "bwrap"
    uid: int = 65534
    gid: int = 65534
    max_file_bytes: int = 2048 * MIB
    max_processes: int = 128
    job_network: Literal["brokers", "host"] = "brokers"

    @classmethod
    def from_settings(cls, settings: SandboxSettings | None = None) -> Sandbox:
        """The sandbox the settings ask for; raises SandboxUnavailable when it cannot run."""
        settings = settings if settings is not None else SandboxSettings()
        sandbox = cls(
            mode=settings.sandbox,
            uid=settings.sandbox_uid,
            gid=settings.sandbox_gid,
            max_file_bytes=settings.sandbox_max_file_bytes,
            max_processes=settings.sandbox_max_processes,
            job_network=settings.sandbox_job_network,
        )
        sandbox.check()
        return sandbox

    def check(self) -> None:
        """Raise SandboxUnavailable when a tool the mode needs is missing."""
        if self.mode == "none":
            return
        for tool in ("bwrap", "prlimit", "setpriv", "env"):
            if shutil.which(tool) is None:
                raise SandboxUnavailable(
                    f"`{tool}` is not installed: user code cannot be sandboxed. Install the "
                    "Debian packages bubblewrap and util-linux, or set KAFKAML_SANDBOX=none to "
                    "run user code with the backend's own rights (unsafe: development only)."
                )

    def launch(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        network: bool | Sequence[Endpoint],
        die_with_parent: bool,
        hidden: Iterable[Path] = (),
        files: Sequence[Path] = (),
    ) -> Launch:
        """The sandboxed form of `argv` (an absolute interpreter path first).

        `env` is the whole environment user code gets (nothing else of the caller's passes);
        bwrap sets HOME and TMPDIR to the private scratch tmpfs, its cwd. `cwd` is where the
        launch starts on the host: user code's own cwd in `none` mode only, which changes
        neither.
        `network=False` leaves no usable interface but the sandbox's own loopback; a sequence of
        endpoints (a job's brokers and job API) adds a route to each of them and nowhere else
        (`kafkaml.egress`: the launch's process forwards them, and the sandbox dies with it);
        `True` shares the host's network. `die_with_parent` kills the sandbox with its caller
        and gives it a session of its own. `hidden` folders are covered by an empty tmpfs should
        they lie inside what is shown (e.g. a data dir inside the project). `files` are host
        files shown read-only at their own paths as copies readable by the sandbox user whatever
        their mode (the Kafka TLS files of a job). Hand `pass_fds` to Popen, `close()` after it.
        Raises SandboxUnavailable (see `check`), OSError when a file cannot be read.
        """
        self.check()
        marker = uuid.uuid4().hex
        if self.mode == "none":
            log.warning(
                "KAFKAML_SANDBOX=none: user code runs UNSANDBOXED with the rights of uid %s; "
                "only a surrounding container, if any, isolates it (on a shared machine it can "
                "read the data dir, the database and the secrets)",
                os.geteuid(),
            )
            return Launch([*argv], {**env, LAUNCH_VARIABLE: marker}, str(cwd), marker=marker)
        plan = self._egress_plan(network)
        copies = _copies(files)
        # With routes, the netns step makes the namespace (bwrap keeps it) and the sandbox must
        # not outlive the process that carries them.
        dies = die_with_parent or plan is not None
        root = os.geteuid() == 0
        # As root, the unprivileged bwrap's parent is the root stage, never the caller.
        bwrap = self._bwrap_inner(network is not False, dies or root, new_session=die_with_parent)
        if plan is not None:
            host_end, inner_end = (end.detach() for end in socket.socketpair())
            bwrap = egress.netns_command(plan, bwrap, channel=inner_end)
            copies.append((_memfd("hosts", plan.hosts.encode()), Path("/etc/hosts")))
        view = _view_args(visible_paths(), copies, self.max_file_bytes)
        tail = self._inner_tail([*self._limits(), *argv], hidden)
        command = ["env", "--ignore-signal=TERM"]
        if root:
            command += [*self._outer_as_root(dies, view), *self._drop(), *bwrap]
            command += ["--ro-bind", "/", "/", "--bind", SCRATCH, SCRATCH, *tail]
        else:
            command += [*bwrap, *view, *tail]
        fds = tuple(fd for fd, _ in copies)
        if plan is not None:
            command = egress.host_command(
                plan, command, channel=host_end, inner=inner_end, passed=fds
            )
            fds = (host_end, inner_end, *fds)
        own = {"HOME": SCRATCH, "TMPDIR": SCRATCH, LAUNCH_VARIABLE: marker}
        return Launch(command, {**env, **own}, str(cwd), fds, marker)

    def _egress_plan(self, network: bool | Sequence[Endpoint]) -> egress.Plan | None:
        """The routes for `network` when it names endpoints (None: no network, or the host's)."""
        if isinstance(network, bool):
            return None
        if self.job_network == "host":
            log.warning(
                "KAFKAML_SANDBOX_JOB_NETWORK=host: a job's user code shares the host's network "
                "and may reach any port of this machine and beyond, not only %s",
                ", ".join(map(str, network)),
            )
            return None
        return egress.plan(network)

    def _limits(self) -> list[str]:
        """Applied inside the sandbox, to the user's command only. Set on bwrap itself, the
        process limit would become its user namespace's ceiling for the count of the sandbox
        uid's processes on the whole host, shared by every sandbox."""
        return [
            "prlimit",
            f"--nproc={self.max_processes}",
            f"--fsize={self.max_file_bytes}",
            "--core=0",
            "--",
        ]

    def _bwrap_inner(self, keep_net: bool, die_with_parent: bool, new_session: bool) -> list[str]:
        """The unprivileged bwrap; `keep_net`: in the caller's network namespace (the host's, or
        the one the netns step made)."""
        args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
        args += ["--uid", str(self.uid), "--gid", str(self.gid), "--cap-drop", "ALL"]
        if keep_net:
            args.append("--share-net")
        if die_with_parent:
            args.append("--die-with-parent")
        if new_session:
            args.append("--new-session")
        return args

    def _inner_tail(self, command: Sequence[str], hidden: Iterable[Path]) -> list[str]:
        """The unprivileged bwrap's own mounts, then `command` (limits included) in /tmp."""
        args = ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm"]
        for path in hidden:
            if path.is_dir() and any(_inside(path, shown) for shown in visible_paths()):
                args += ["--tmpfs", str(path)]
        # The sandbox's own root (its folders are the sandbox user's when bwrap runs unprivileged)
        # read-only too: only the scratch tmpfs takes writes.
        args += ["--remount-ro", "/"]
        return [*args, "--chdir", SCRATCH, "--", *command]

    def _drop(self) -> list[str]:
        """As root, between the stages: become the sandbox user before the unprivileged bwrap
        (which then shows the root stage's view, `/`, read-only and its scratch tmpfs writable)."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--"]

    def _outer_as_root(self, die_with_parent: bool, view: list[str]) -> list[str]:
        """A root bwrap that only assembles the read-only view and may change uid once.

        Its own pid namespace ties the stages below it to its life: the kernel sends a parent-death
        signal only where the dying parent may signal the child, and this bwrap (root, but with
        every capability dropped) may not signal the sandbox user's processes, so the
        unprivileged bwrap's `--die-with-parent` never fired when this one died alone. Its init
        is root like itself and gets the signal; when that init dies, the kernel kills every
        process of the namespace, whatever its uid."""
        args = ["bwrap", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        args.append("--unshare-pid")
        if die_with_parent:
            args.append("--die-with-parent")
        # The host /proc, uncovered: the second stage may mount a fresh proc only where one is
        # fully visible. Nothing but setpriv, prlimit and bwrap runs before it is replaced.
        return [*args, *view, "--bind", "/proc", "/proc", "--dev", "/dev", "--"]


def exit_signal(status: int) -> int | None:
    """The signal that ended a launch's command, from the launch's exit status (None: it
    exited). Unsandboxed, Popen reports it as -N; bwrap exits with 128 + N instead."""
    if status < 0:
        return -status
    if 128 < status < 128 + signal.NSIG:
        return status - 128
    return None


def kill_tree(pid: int, timeout_s: float = 10.0) -> None:
    """SIGKILL process `pid`'s process group and every descendant of `pid`, then wait (up to
    `timeout_s`) until none of them is left, zombies aside.

    For a launch started with `start_new_session=True`: the sandbox's pid-namespace init may sit
    in a session of its own (`--new-session`), out of the group's reach; killed directly, it
    takes every process of its namespace with it, `setsid()` or not. Only then is it safe to say
    that nothing user code started is left. The caller still reaps its own child `pid`.
    """
    doomed = [pid, *_descendants(pid)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for member in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    _wait_gone(doomed[1:], timeout_s)


def kill_group(pgid: int, timeout_s: float = 10.0) -> list[int]:
    """SIGKILL every process of process group `pgid`, then wait (up to `timeout_s`) until none
    of them is left, zombies aside; the pids it killed.

    For what a launch started with `start_new_session=True` leaves once its first process has
    ended: a part of the sandbox that lost its parent (say its outer bwrap was killed alone)
    runs on, reparented, in that group. Call it before reaping the first process: until then
    `pgid` cannot be a new process's.
    """
    members = [pid for pid, group in _groups().items() if group == pgid and _running(pid)]
    if not members:
        return []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _wait_gone(members, timeout_s)
    return members


def _wait_gone(pids: list[int], timeout_s: float) -> None:
    """Poll until none of `pids` runs (zombies count as gone), for at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


def carries(pid: int, marker: str) -> bool:
    """Whether process `pid` runs (a zombie does not) with `marker` in its environment: it is a
    process of the launch whose `Launch.marker` that is, not one that reuses its pid. False
    too when its environment cannot be read (another user's process, when not root)."""
    if not marker:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{LAUNCH_VARIABLE}={marker}".encode() in environ.split(b"\0") and _running(pid)


def kill_launch(marker: str, timeout_s: float = 10.0) -> list[int]:
    """SIGKILL every process that carries `marker` (`carries`), wherever its parent or group,
    then wait (up to `timeout_s`) until none of them is left, zombies aside; the pids killed.

    For the remains of a launch whose first process ended while nobody watched it (the backend
    was down): its pid and group id may belong to other processes by now, its marker not. Each
    process is signalled through a pidfd opened before its environment is read, so a pid that
    is reused meanwhile is never signalled.
    """
    killed: dict[int, int] = {}  # pidfd -> pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pidfd = os.pidfd_open(int(entry.name))
        except OSError:  # gone already
            continue
        try:
            if carries(int(entry.name), marker):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                killed[pidfd] = int(entry.name)
                continue
        except ProcessLookupError:
            pass
        os.close(pidfd)
    _wait_exited(list(killed), timeout_s)
    return sorted(killed.values())


def _wait_exited(pidfds: list[int], timeout_s: float) -> None:
    """Wait until each pidfd's process has exited (a pidfd polls readable then), up to
    `timeout_s`; close them."""
    poller = select.poll()
    for pidfd in pidfds:
        poller.register(pidfd, select.POLLIN)
    left, deadline = set(pidfds), time.monotonic() + timeout_s
    try:
        while left and time.monotonic() < deadline:
            for pidfd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                poller.unregister(pidfd)
                left.discard(pidfd)
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def _groups() -> dict[int, int]:
    """pid -> process group of every process."""
    groups: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                groups[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[2])
    return groups


def _descendants(pid: int) -> list[int]:
    """Host pids of every descendant of `pid`, parents before children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue += children.get(child, [])
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def visible_paths() -> list[Path]:
    """Host folders and files user code sees, read-only: /usr, the interpreter's and the
    virtual environment's prefixes (with their site-packages), the worker packages, and a few
    files under /etc. Other import paths (a PYTHONPATH, an editable install's project folder)
    are not shown: they may hold a data dir."""
    prefixes = [Path("/usr"), Path(sys.base_prefix), Path(sys.prefix)]
    paths = [*prefixes, *(PROJECT_ROOT / name for name in WORKER_PACKAGES)]
    paths += [Path(name) for name in _ETC]
    existing = [path.resolve() for path in paths if path.exists()]
    return _outermost(existing)


def _outermost(paths: list[Path]) -> list[Path]:
    """Paths without those inside another one of them, shortest first."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(_inside(path, parent) for parent in kept):
            kept.append(path)
    return kept


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or path.is_relative_to(parent)


def _copies(files: Sequence[Path]) -> list[tuple[int, Path]]:
    """Each file's content in an anonymous memory file (fd, path), for bwrap --ro-bind-data."""
    return [
        (_memfd(path.name, Path(path).read_bytes()), Path(os.path.abspath(path))) for path in files
    ]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(f"kafkaml-sandbox-{name}")
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _view_args(
    paths: Sequence[Path], copies: Sequence[tuple[int, Path]], scratch_bytes: int
) -> list[str]:
    """bwrap arguments for a root with the scratch tmpfs at /tmp, `paths` read-only (their
    parents world-traversable, so that the unprivileged stage can reach them), the `copies` as
    world-readable files, and Debian's /bin, /lib symlinks. The tmpfs comes first, so that what
    is shown from the host's /tmp (a test's folder, a venv) lies on top of it, not under it."""
    args = ["--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", SCRATCH]
    made: set[Path] = set()

    def parents_of(path: Path) -> list[str]:
        made_now = []
        for parent in reversed(path.parents[:-1]):
            if parent not in made and not any(_inside(parent, shown) for shown in paths):
                made.add(parent)
                made_now += ["--perms", "0755", "--dir", str(parent)]
        return made_now

    for path in paths:
        args += [*parents_of(path), "--ro-bind", str(path), str(path)]
    for fd, path in copies:
        args += [*parents_of(path), "--perms", "0444", "--ro-bind-data", str(fd), str(path)]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = Path("/") / name
        if target.is_symlink() and not any(_inside(target, p) for p in paths):
            args += ["--symlink", os.readlink(target), str(target)]
    return args
