"""One request, one fresh child process: spawn, limit, wait, collect.

The parent (which never imports TensorFlow or PyTorch) starts `python -m mlcode_executor.sandbox`
through `kafkaml.sandbox` (bubblewrap: user nobody, no network, no view of the data dir or of
other processes, a private scratch tmpfs, file size and process limits, killed with its parent)
in a new session with a scrubbed environment (no database URL, no secrets), sends the request
on stdin and reads JSON events from a dedicated pipe. The child imports the framework and warms it
up, reports `ready`, sets RLIMIT_AS to its current address space plus the memory limit, runs the
operation and reports the result or the error. The wall-time limit runs from `ready`, so a slow
framework import on a busy machine is not charged to the user's code; the parent kills the whole
process group when it expires.

Why the memory limit is relative: TensorFlow maps ~2 GiB and PyTorch ~3.2 GiB of address space
before any user code runs (measured here), so an absolute 2 GiB RLIMIT_AS would stop PyTorch
from importing at all. `memory_bytes` is what the user's code may add on top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kafkaml.frameworks.errors import (
    ArtifactError,
    FrameworkError,
    ModelCodeError,
    TrainingSettingsError,
)
from kafkaml.sandbox import MIB, Sandbox, SandboxUnavailable, exit_signal, kill_tree
from mlcode_executor.checks import GIB, RequestError, check_request

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_BYTES = 2 * GIB
# Importing TensorFlow takes ~5 s on two busy cores; this only bounds a hung start-up.
STARTUP_TIMEOUT_S = 180.0
# A validation writes nothing of note; this bounds what hostile code can write to its scratch.
VALIDATION_MAX_FILE_BYTES = 256 * MIB
_ROOT = Path(__file__).resolve().parent.parent
_ERRORS: dict[str, type[FrameworkError]] = {
    "ModelCodeError": ModelCodeError,
    "ArtifactError": ArtifactError,
    "TrainingSettingsError": TrainingSettingsError,
    "RequestError": RequestError,
}


class ExecutorUnavailable(RuntimeError):
    """No validation could run: the sandbox did not start, or the service did not answer."""


class ExecutorBusy(ExecutorUnavailable):
    """Every validation slot stayed taken for the whole bounded wait; retry later."""


class Slots:
    """At most `limit` validations at once; a caller waits at most `wait_s` for a slot.

    The bound on the wait is what keeps a burst of validations from holding every thread of the
    process that serves other requests: past it, `take()` raises ExecutorBusy (an HTTP 503).
    """

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.taken = 0  # slots held now (for reports and tests)
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """Hold one slot for the block; raises ExecutorBusy when none frees up in time."""
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise ExecutorBusy(
                f"all {self.limit} validation slots are busy (waited {self.wait_s:g} s); "
                "retry in a moment"
            )
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1
            self._semaphore.release()


def execute(
    operation: str,
    request: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    spares: Spares | None = None,
) -> dict[str, Any]:
    """Run one operation in a fresh sandboxed child and return its result.

    The one code path behind both the direct call and the HTTP service. With `spares`, the
    child was started and warmed up ahead of time (its memory limit is the pool's); it still
    serves this one request only. Raises ModelCodeError (bad code, time or memory limit, the
    code ended the process), TrainingSettingsError, ArtifactError or RequestError, and
    ExecutorUnavailable when no child could start; the caller is unaffected by the user's code.
    """
    check_request(operation, request)
    runtime = runtime_for(operation, request)
    child = spares.take(runtime) if spares else _Child(runtime, memory_bytes)
    try:
        event = _run(child, operation, request, timeout_s)
    finally:
        child.kill()
    return _outcome(operation, event, child)


def runtime_for(operation: str, request: Mapping[str, Any]) -> str:
    """What the child must load: "onnx" (onnxruntime only) for an ONNX artifact, else the
    framework's name."""
    if operation == "validate_artifact" and request.get("artifact_format") == "onnx":
        return "onnx"
    return str(request["framework"])


class Spares:
    """One started, warmed-up child per runtime, each waiting for its single request.

    Taking one starts its replacement at once, so a long-lived caller (the HTTP service, a
    backend process) does not pay the framework's import on every request. `close()` kills
    the waiting children; a closed pool starts no more.

    Replacements are started by the pool's own long-lived thread: a sandbox dies with the
    thread that started it (bubblewrap's --die-with-parent is the kernel's parent-death signal,
    which follows the thread), and a request's thread ends with the request.
    """

    def __init__(self, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.memory_bytes = memory_bytes
        self._idle: dict[str, Future[_Child]] = {}
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafkaml-spares")
        self._lock = threading.Lock()
        self._closed = False

    def take(self, runtime: str) -> _Child:
        """A child for `runtime`, ready or starting; raises ExecutorUnavailable when closed."""
        with self._lock:
            if self._closed:
                raise ExecutorUnavailable("the executor is shutting down")
            waiting = self._idle.pop(runtime, None)
            self._idle[runtime] = self._starter.submit(_Child, runtime, self.memory_bytes)
        child = _started(waiting)
        if child is not None and child.process.poll() is None:
            return child
        if child is not None:
            child.kill()
        return _Child(runtime, self.memory_bytes)

    def pids(self) -> list[int]:
        """Process ids of the waiting children."""
        with self._lock:
            waiting = list(self._idle.values())
        return [child.process.pid for child in map(_started, waiting) if child is not None]

    def close(self) -> None:
        """Kill every waiting child."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle.values()), {}
        self._starter.shutdown(wait=True)  # a start in progress ends first (Popen: milliseconds)
        for child in map(_started, idle):
            if child is not None:
                child.kill()


def _started(waiting: Future[_Child] | None) -> _Child | None:
    """The child a spare's start produced; None when there was none or it failed to start."""
    if waiting is None:
        return None
    try:
        return waiting.result()
    except ExecutorUnavailable:
        return None


def _run(
    child: _Child, operation: str, request: Mapping[str, Any], timeout_s: float
) -> dict[str, Any]:
    try:
        started = child.wait_for(STARTUP_TIMEOUT_S)
    except TimeoutError:
        raise ExecutorUnavailable(
            f"the sandbox did not start within {STARTUP_TIMEOUT_S:g} s"
        ) from None
    if started.get("event") != "ready":
        return started  # it died while starting; _outcome says how
    child.send(operation, request)
    try:
        return child.wait_for(timeout_s)
    except TimeoutError:
        what = f"did not finish within {timeout_s:g} s (time limit)"
        raise _limit_error(operation, what) from None


def error_from_dict(data: Mapping[str, Any]) -> FrameworkError:
    """Rebuild an error sent as `{"type", "message", "line", "field"}` (child or HTTP)."""
    kind = data.get("type", "ModelCodeError")
    message = str(data.get("message", "validation failed"))
    if kind == "TrainingSettingsError":
        return TrainingSettingsError(message, field=data.get("field"))
    if kind == "ArtifactError":
        return ArtifactError(message)
    if kind == "RequestError":
        return RequestError(message)
    return ModelCodeError(message, line=data.get("line"), field=data.get("field") or "code")


def error_to_dict(error: FrameworkError) -> dict[str, Any]:
    """The JSON form of an error, read back by `error_from_dict`."""
    return {
        "type": type(error).__name__ if type(error).__name__ in _ERRORS else "ModelCodeError",
        "message": getattr(error, "message", str(error)),
        "line": getattr(error, "line", None),
        "field": getattr(error, "field", None),
    }


class _Child:
    """A child process for one runtime, its event pipe and its own temporary home."""

    def __init__(self, runtime: str, memory_bytes: int) -> None:
        # The caller's folder: the child's log lives here, out of the sandbox's sight.
        self.home = Path(tempfile.mkdtemp(prefix="kafkaml-sandbox-"))
        self.log_path = self.home / "child.log"
        read_fd, write_fd = os.pipe()
        command = [sys.executable, "-m", "mlcode_executor.sandbox", str(write_fd)]
        try:
            launch = _sandbox().launch(
                [*command, str(memory_bytes), runtime],
                env={**_child_env(), "HOME": str(self.home), "TMPDIR": str(self.home)},
                cwd=self.home,
                network=False,
                die_with_parent=True,
            )
        except SandboxUnavailable as error:
            os.close(read_fd)
            os.close(write_fd)
            shutil.rmtree(self.home, ignore_errors=True)
            raise ExecutorUnavailable(str(error)) from error
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                cwd=launch.cwd,
                env=launch.env,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        os.close(write_fd)
        self.events = os.fdopen(read_fd, "rb")
        self.buffer = b""
        self.tail = ""  # the end of its output, kept by kill()

    def send(self, operation: str, request: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"operation": operation, **request}).encode())
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # the child died; wait_for and _outcome report how

    def wait_for(self, timeout_s: float) -> dict[str, Any]:
        """The next event, `{}` when the child closed the pipe, TimeoutError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.events], [], [], left)
            if ready:
                chunk = os.read(self.events.fileno(), 65536)
                if not chunk:
                    return {}
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def kill(self) -> None:
        """Kill the whole process group: whatever the user's code started goes with it."""
        kill_tree(self.process.pid)
        self.process.wait()
        if not self.events.closed:
            self.events.close()
        if self.home.exists():
            self.tail = self._read_log()
            shutil.rmtree(self.home, ignore_errors=True)

    def _read_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def _outcome(operation: str, event: Mapping[str, Any], child: _Child) -> dict[str, Any]:
    if "result" in event:
        return dict(event["result"])
    if "error" in event:
        raise error_from_dict(event["error"])
    status = child.process.returncode
    killer = exit_signal(status) if status is not None else None
    if killer is not None:
        how = f"was killed by signal {signal.Signals(killer).name}"
    else:
        how = f"exited with status {status}"
    if any(s in child.tail for s in ("bad_alloc", "MemoryError", "Cannot allocate memory")):
        raise _limit_error(operation, f"exceeded the memory limit (the process {how})")
    raise _limit_error(operation, f"ended the validation process before it finished (it {how})")


def _limit_error(operation: str, what: str) -> FrameworkError:
    if operation == "validate_training":
        return TrainingSettingsError(f"the training dry run {what}", field=None)
    return ModelCodeError(f"the model code {what}", line=None)


@functools.cache
def _sandbox() -> Sandbox:
    """The sandbox of every validation: the settings' one (`KAFKAML_SANDBOX*`), with no
    network and files of at most VALIDATION_MAX_FILE_BYTES. Raises SandboxUnavailable."""
    sandbox = Sandbox.from_settings()
    limit = min(sandbox.max_file_bytes, VALIDATION_MAX_FILE_BYTES)
    return dataclasses.replace(sandbox, max_file_bytes=limit)


def _child_env() -> dict[str, str]:
    """Only what Python needs: nothing from the caller's environment reaches user code."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        # One malloc arena per thread reserves 64 MiB of address space each; TF's thread pools
        # would spend the memory limit on reservations instead of the user's data.
        "MALLOC_ARENA_MAX": "2",
    }


# --- the child -----------------------------------------------------------------------------


def _child_main(events_fd: int, memory_bytes: int, runtime: str) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    events = os.fdopen(events_fd, "w", buffering=1)
    from mlcode_executor.operations import OPERATIONS, warm_up

    warm_up(runtime)
    events.write(json.dumps({"event": "ready"}) + "\n")
    request = json.loads(sys.stdin.read())
    operation = request.pop("operation")
    _forbid_exit()
    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result: dict[str, Any] = {"result": OPERATIONS[operation](request)}
    except FrameworkError as exc:
        result = {"error": error_to_dict(exc)}
    except MemoryError:
        message = "the model code exceeded the memory limit"
        result = {"error": {"type": "ModelCodeError", "message": message}}
    events.write(json.dumps(result) + "\n")
    events.close()


def _forbid_exit() -> None:
    """Turn `os._exit(n)` in user code into an exception, so it is reported with its line."""

    def refuse(code: int) -> None:
        exc = SystemExit(code)
        exc.call = f"os._exit({code!r})"  # type: ignore[attr-defined]
        raise exc

    os._exit = refuse  # type: ignore[assignment]


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read VmSize from /proc/self/status")


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
