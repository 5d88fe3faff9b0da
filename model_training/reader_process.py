"""The native reader in a child process, so reading the stream uses another core than training.

confluent-kafka builds a Python object for every record it hands over, holding the GIL while it
does; in a thread of the training process that stalls the training loop, whose every step needs
the GIL too (measured: one Keras epoch while 1,000,000 samples are read took 2.2-2.5x the epoch
from memory). The child runs `read_ranges` and sends each decoded batch back over its stdout as
a length-prefixed pickle; `ChildReader` yields them in order. An error in the child
(DecodeError, RangeReadError, ...) comes back the same way and is raised with its facts. The
child exits when its stdin closes, so a job that is killed or stopped leaves no reader behind.

Started by `ChildReader` only, as `python -m model_training.reader_process`.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from kafkaml.kafka import KafkaSettings
from kafkaml.protocol import InputFormat, TopicRange, read_ranges
from kafkaml.protocol.reader import Batch as ReadBatch

_LENGTH = struct.Struct("<Q")
# A pipe holds 64 KiB by default; a decoded batch is ~1 MB, so a larger pipe means fewer
# context switches between the two processes (Linux caps it at /proc/sys/fs/pipe-max-size).
_PIPE_BYTES = 1 << 20


class ReaderProcessError(RuntimeError):
    """The reader process ended without sending its data or the error that stopped it."""


class ChildReader:
    """`read_ranges` run in child processes: each call reads in its own child.

    A child is started when the reader is made (unless `start_ahead` is False: a job that will
    not read ranges), so the first read does not wait for a Python interpreter to start: the job
    makes its reader before it waits for the control message. Later calls start theirs on
    demand. A child that is never used exits with this process.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        batch_size: int,
        stall_timeout_s: float,
        *,
        start_ahead: bool = True,
    ) -> None:
        self._settings = settings
        self._batch_size = batch_size
        self._stall_timeout_s = stall_timeout_s
        self._ready: _Child | None = _Child.start() if start_ahead else None

    def wait_ready(self) -> None:
        """Wait until the child started ahead has loaded its modules (benchmarks use it to
        time reading alone). Raises ReaderProcessError when it died instead."""
        if self._ready is not None:
            self._ready.wait_ready()

    def __call__(
        self,
        ranges: Sequence[TopicRange],
        input_format: InputFormat,
        input_config: Mapping[str, Any],
        labeled: bool,
    ) -> Iterator[ReadBatch]:
        """The same batches as `read_ranges`, in the same order.

        Raises what `read_ranges` raises in the child, and ReaderProcessError when the child
        dies without a word. Closing the iterator early ends the child.
        """
        child, self._ready = self._ready or _Child.start(), None
        request = (self._settings, list(ranges), input_format, dict(input_config),
                   self._batch_size, labeled, self._stall_timeout_s)  # fmt: skip
        return _read(child, request)


class _Child:
    """One reader process and whether it has said it is ready."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin: IO[bytes] = process.stdin
        self.stdout: IO[bytes] = process.stdout
        self._ready = False

    @classmethod
    def start(cls) -> _Child:
        process = subprocess.Popen(
            [sys.executable, "-m", "model_training.reader_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        _widen(process.stdout)
        return cls(process)

    def wait_ready(self) -> None:
        if not self._ready:
            if _read_frame(self.stdout) != ("ready", None):
                raise ReaderProcessError(f"the reader process exited with {self.process.wait()}")
            self._ready = True


def _read(child: _Child, request: tuple[Any, ...]) -> Iterator[ReadBatch]:
    try:
        _write_frame(child.stdin, request)
        child.wait_ready()
        yield from _batches(child.stdout, child.process)
    finally:
        child.stdin.close()
        if child.process.poll() is None:
            child.process.kill()
        child.process.wait()
        child.stdout.close()


def _batches(stream: IO[bytes], child: subprocess.Popen[bytes]) -> Iterator[ReadBatch]:
    while True:
        frame = _read_frame(stream)
        if frame is None:
            code = child.wait()
            raise ReaderProcessError(f"the reader process exited with code {code} mid-stream")
        kind, payload = frame
        if kind == "end":
            return
        if kind == "error":
            raise payload
        yield payload


def _widen(pipe: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe only costs more context switches


def _write_frame(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the stream (the writer is gone)."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    if len(data) < length:
        return None
    # The frames come from our own child process, started just now with our own code.
    return pickle.loads(data)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The child: say it is ready, read the request, send every batch, then "end" or the error."""
    _write_frame(stdout, ("ready", None))
    request = _read_frame(stdin)
    if request is None:
        return 1
    threading.Thread(target=_exit_when_closed, args=(stdin,), daemon=True).start()
    settings, ranges, input_format, input_config, batch_size, labeled, stall_timeout_s = request
    try:
        for batch in read_ranges(settings, ranges, input_format, input_config, batch_size,
                                 labeled=labeled, stall_timeout_s=stall_timeout_s):  # fmt: skip
            _write_frame(stdout, ("batch", batch))
    except Exception as error:  # every failure goes to the parent, which reports it
        _write_frame(stdout, ("error", _portable(error)))
        return 1
    _write_frame(stdout, ("end", None))
    return 0


def _portable(error: Exception) -> Exception:
    """The error itself when it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # any exception class can refuse to be rebuilt
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _exit_when_closed(stdin: IO[bytes]) -> None:
    """End the child when the parent closes its stdin or dies."""
    stdin.read()
    os._exit(0)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        sys.exit(_serve(sys.stdin.buffer, sys.stdout.buffer))
    except BrokenPipeError:
        sys.exit(1)  # the parent is gone
