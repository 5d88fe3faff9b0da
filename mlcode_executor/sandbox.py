"""One request, one fresh child process: spawn, limit, wait, collect.

The parent (which never imports TensorFlow or PyTorch) starts `python -m mlcode_executor.sandbox`
in a new session with a scrubbed environment (no database URL, no secrets, HOME and cwd in a
fresh temporary directory), sends the request on stdin and reads JSON events from a dedicated
pipe. The child imports the framework and warms it up, reports `ready`, sets RLIMIT_AS to its
current address space plus the memory limit, runs the operation and reports the result or the
error. The wall-time limit runs from `ready`, so a slow framework import on a busy machine is not
charged to the user's code; the parent kills the whole process group when it expires.

Why the memory limit is relative: TensorFlow maps ~2 GiB and PyTorch ~3.2 GiB of address space
before any user code runs (measured here), so an absolute 2 GiB RLIMIT_AS would stop PyTorch
from importing at all. `memory_bytes` is what the user's code may add on top.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kafkaml.frameworks.errors import (
    ArtifactError,
    FrameworkError,
    ModelCodeError,
    TrainingSettingsError,
)
from mlcode_executor.checks import GIB, RequestError, check_request

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_BYTES = 2 * GIB
# Importing TensorFlow takes ~5 s on two busy cores; this only bounds a hung start-up.
STARTUP_TIMEOUT_S = 180.0
_ROOT = Path(__file__).resolve().parent.parent
_ERRORS: dict[str, type[FrameworkError]] = {
    "ModelCodeError": ModelCodeError,
    "ArtifactError": ArtifactError,
    "TrainingSettingsError": TrainingSettingsError,
    "RequestError": RequestError,
}


def execute(
    operation: str,
    request: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> dict[str, Any]:
    """Run one operation in a fresh sandboxed child and return its result.

    The one code path behind both the direct call and the HTTP service. Raises ModelCodeError
    (bad code, time or memory limit, the code ended the process), TrainingSettingsError,
    ArtifactError or RequestError; the calling process is unaffected by whatever the code does.
    """
    check_request(operation, request)
    with tempfile.TemporaryDirectory(prefix="kafkaml-sandbox-") as home:
        child = _Child(Path(home), memory_bytes)
        try:
            child.send(operation, request)
            event = child.wait_for(STARTUP_TIMEOUT_S)
            if event.get("event") == "ready":
                event = child.wait_for(timeout_s)
        except TimeoutError:
            what = f"did not finish within {timeout_s:g} s (time limit)"
            raise _limit_error(operation, what) from None
        finally:
            child.kill()
    return _outcome(operation, event, child)


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
    """The child process, its event pipe and its log file."""

    def __init__(self, home: Path, memory_bytes: int) -> None:
        self.log_path = home / "child.log"
        read_fd, write_fd = os.pipe()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlcode_executor.sandbox", str(write_fd), str(memory_bytes)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                cwd=home,
                env=_child_env(home),
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        os.close(write_fd)
        self.events = os.fdopen(read_fd, "rb")
        self.buffer = b""

    def send(self, operation: str, request: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"operation": operation, **request}).encode())
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; wait_for reports how

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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if not self.events.closed:
            self.events.close()

    def log_tail(self) -> str:
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
    if status is not None and status < 0:
        how = f"was killed by signal {signal.Signals(-status).name}"
    else:
        how = f"exited with status {status}"
    if any(s in child.log_tail() for s in ("bad_alloc", "MemoryError", "Cannot allocate memory")):
        raise _limit_error(operation, f"exceeded the memory limit (the process {how})")
    raise _limit_error(operation, f"ended the validation process before it finished (it {how})")


def _limit_error(operation: str, what: str) -> FrameworkError:
    if operation == "validate_training":
        return TrainingSettingsError(f"the training dry run {what}", field=None)
    return ModelCodeError(f"the model code {what}", line=None)


def _child_env(home: Path) -> dict[str, str]:
    """Only what Python needs: nothing from the caller's environment reaches user code."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(home),
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


def _child_main(events_fd: int, memory_bytes: int) -> None:
    import resource

    events = os.fdopen(events_fd, "w", buffering=1)
    request = json.loads(sys.stdin.read())
    operation = request.pop("operation")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from mlcode_executor.operations import OPERATIONS, warm_up

    warm_up(operation, request)
    _forbid_exit()
    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    events.write(json.dumps({"event": "ready"}) + "\n")
    try:
        result: dict[str, Any] = {"result": OPERATIONS[operation](request)}
    except FrameworkError as exc:
        result = {"error": error_to_dict(exc)}
    except MemoryError:
        result = {
            "error": {"type": "ModelCodeError", "message": "the model exceeded the memory limit"}
        }
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
    _child_main(int(sys.argv[1]), int(sys.argv[2]))
