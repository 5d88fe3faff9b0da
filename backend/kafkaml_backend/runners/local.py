"""The `local` runner: jobs as child processes of the backend on this machine.

A training job (`python -m model_training`) runs per training result, or per chain with
`KAFKAML_RESULT_IDS` edge first and one job token per result; an inference runs one
`python -m model_inference` per replica with `KAFKAML_INFERENCE_REPLICA=<i>`. Each child is the
leader of its own process group (stopping it reaches whatever it started), writes stdout and
stderr to `<data dir>/logs/`, and has its pid in `JobProcess` rows.

Two things notice a job's end: a watcher thread per child this process started (`wait()`, so the
exit code is exact), and `reconcile()`, which checks the rows against the operating system and
covers processes that ended while no backend watched them (a restart). A job that ends while its
result or inference is still created or running becomes failed with the reason and its log tail;
one that ends after a stop changes nothing (the stop service already set `stopped`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from backend.apps.processes.models import JobProcess, ProcessKind
from backend.kafkaml_backend.auth import issue_job_token
from backend.kafkaml_backend.config import PROJECT_ROOT
from backend.kafkaml_backend.runners.base import JobStatus
from kafkaml.kafka import KafkaSettings
from kafkaml.sandbox import Sandbox

if TYPE_CHECKING:
    from backend.apps.inferences.models import Inference
    from backend.apps.training.models import TrainingResult

log = logging.getLogger(__name__)
STOP_GRACE_S = 20.0
LOG_TAIL_BYTES = 4000
ENDED_UNWATCHED = "the process ended while the backend was not watching"

# Children this backend process started and whose watcher thread still waits on them, by pid:
# the reconciler leaves these to their watcher (it alone can read their exit code).
_watched: dict[int, subprocess.Popen[bytes]] = {}
_watched_lock = threading.Lock()


def kafka_environment(kafka: KafkaSettings) -> dict[str, str]:
    """`KAFKAML_KAFKA_*` variables that make a job's `KafkaSettings()` equal `kafka`."""
    env: dict[str, str] = {}
    for name, value in kafka.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"KAFKAML_KAFKA_{name.upper()}"] = str(value)
    return env


class LocalRunner:
    """Runs jobs as child processes; see the module docstring.

    `kafka` defaults to the backend's own `KafkaSettings()` (its `KAFKAML_KAFKA_*` environment).
    """

    def __init__(self, kafka: KafkaSettings | None = None) -> None:
        self.kafka = kafka if kafka is not None else KafkaSettings()
        self.logs_dir = Path(settings.KAFKAML.data_dir) / "logs"

    # --- starting -------------------------------------------------------------------------

    def start_training(self, results: Sequence[TrainingResult]) -> None:
        """One `model_training` process for `results` (one result, or a chain edge first)."""
        ids = [result.pk for result in results]
        log_path = self.logs_dir / f"training-{'-'.join(map(str, ids))}.log"
        env = {
            "KAFKAML_RESULT_IDS": ",".join(map(str, ids)),
            "KAFKAML_JOB_TOKEN": ",".join(issue_job_token("result", pk) for pk in ids),
        }
        try:
            process = self._spawn("model_training", env, log_path)
        except OSError as error:  # no log folder, no interpreter: the result says why
            from backend.apps.training.services import result_fail

            for pk in ids:
                result_fail(result_id=pk, reason=f"the job process did not start: {error}")
            return
        JobProcess.objects.bulk_create(
            JobProcess(kind=ProcessKind.RESULT, object_id=pk, pid=process.pid, log_path=log_path)
            for pk in ids
        )
        self._watch(process)

    def start_inference(self, inference: Inference) -> None:
        """`inference.replicas` `model_inference` processes."""
        self._start_replicas(inference, range(inference.replicas))

    def _start_replicas(self, inference: Inference, replicas: range) -> None:
        for replica in replicas:
            log_path = self.logs_dir / f"inference-{inference.pk}-{replica}.log"
            env = {
                "KAFKAML_INFERENCE_ID": str(inference.pk),
                "KAFKAML_INFERENCE_REPLICA": str(replica),
                "KAFKAML_JOB_TOKEN": issue_job_token("inference", inference.pk),
            }
            try:
                process = self._spawn("model_inference", env, log_path)
            except OSError as error:
                from backend.apps.inferences.services import inference_fail

                reason = f"replica {replica} did not start: {error}"
                inference_fail(inference_id=inference.pk, reason=reason)
                return
            JobProcess.objects.create(
                kind=ProcessKind.INFERENCE,
                object_id=inference.pk,
                replica=replica,
                pid=process.pid,
                log_path=log_path,
            )
            self._watch(process)

    def _spawn(
        self, module: str, job_env: Mapping[str, str], log_path: Path
    ) -> subprocess.Popen[bytes]:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        env = {
            # The backend's own KAFKAML_ settings (database, secret key) are not the job's.
            **{k: v for k, v in os.environ.items() if not k.startswith("KAFKAML_")},
            **{
                k: v
                for k, v in os.environ.items()
                if k.startswith(("KAFKAML_TRAINING_", "KAFKAML_INFERENCE_", "KAFKAML_FEDERATED_"))
            },
            **kafka_environment(self.kafka),
            "KAFKAML_BACKEND_URL": settings.KAFKAML.backend_url,
            "KAFKAML_CONTROL_TOPIC": settings.KAFKAML.control_topic,
            **job_env,
        }
        # User code: in the sandbox (kafkaml.sandbox), with the network (brokers, job API) and
        # the Kafka TLS files, but neither the data dir nor the backend's processes.
        kafka = self.kafka
        tls = (kafka.ssl_ca_location, kafka.ssl_certificate_location, kafka.ssl_key_location)
        launch = Sandbox.from_settings().launch(
            [sys.executable, "-m", module],
            env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
            network=True,
            die_with_parent=False,  # jobs outlive a backend restart; reconcile() finds them
            hidden=[Path(settings.KAFKAML.data_dir)],
            files=[Path(name) for name in tls if name],
        )
        try:
            with log_path.open("ab") as log:
                return subprocess.Popen(
                    launch.argv,
                    cwd=launch.cwd,
                    env=launch.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: a stop reaches its children too
                    pass_fds=launch.pass_fds,
                )
        finally:
            launch.close()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        with _watched_lock:
            _watched[process.pid] = process
        threading.Thread(
            target=_wait_and_record, args=(process,), name=f"job-{process.pid}", daemon=True
        ).start()

    # --- stopping and changing ------------------------------------------------------------

    def stop_training(self, result: TrainingResult) -> None:
        self._stop(JobProcess.objects.filter(kind=ProcessKind.RESULT, object_id=result.pk))

    def stop_inference(self, inference: Inference) -> None:
        self._stop(_live(ProcessKind.INFERENCE, inference.pk))

    def scale_inference(self, inference: Inference, replicas: int) -> None:
        """Start the missing replicas, stop those numbered `replicas` and above."""
        live = list(_live(ProcessKind.INFERENCE, inference.pk))
        self._stop([row for row in live if row.replica >= replicas])
        running = {row.replica for row in live if row.replica < replicas}
        missing = [i for i in range(replicas) if i not in running]
        for replica in missing:
            self._start_replicas(inference, range(replica, replica + 1))

    def swap_inference_model(self, inference: Inference) -> None:
        """Nothing to do: replicas poll their spec and load the new model version themselves
        (`KAFKAML_INFERENCE_SPEC_POLL_S`), without a restart and without losing a batch."""
        return None

    def _stop(self, rows: Iterable[JobProcess]) -> None:
        """SIGTERM to each row's process group now, SIGKILL after STOP_GRACE_S if it remains."""
        pids: set[int] = set()
        for row in rows:
            if row.ended_at is not None:
                continue
            JobProcess.objects.filter(pk=row.pk).update(stop_requested=True)
            pids.add(row.pid)
        for pid in pids:
            if _alive(pid):
                _signal_group(pid, signal.SIGTERM)
                timer = threading.Timer(STOP_GRACE_S, _kill_if_alive, args=(pid,))
                timer.daemon = True
                timer.start()

    # --- looking --------------------------------------------------------------------------

    def status(self, obj: TrainingResult | Inference) -> JobStatus:
        rows = list(JobProcess.objects.filter(kind=_kind_of(obj), object_id=obj.pk))
        if not rows:
            return JobStatus(state="not-started")
        live = [row for row in rows if row.ended_at is None]
        if live:
            return JobStatus(state="running", detail=f"pids {sorted({r.pid for r in live})}")
        last = rows[-1]
        return JobStatus(state="exited", detail=last.end_reason)

    def logs(self, obj: TrainingResult | Inference) -> str:
        rows = JobProcess.objects.filter(kind=_kind_of(obj), object_id=obj.pk)
        paths = list(dict.fromkeys(row.log_path for row in rows))
        return "\n".join(_tail(Path(path)) for path in paths)


def _kind_of(obj: TrainingResult | Inference) -> str:
    from backend.apps.training.models import TrainingResult

    return ProcessKind.RESULT if isinstance(obj, TrainingResult) else ProcessKind.INFERENCE


def _live(kind: str, object_id: int) -> list[JobProcess]:
    return list(JobProcess.objects.filter(kind=kind, object_id=object_id, ended_at__isnull=True))


def _tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    """The last `size` bytes of a log file as text ("" when it is missing)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - size))
            return file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) kafkaml job process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    is_job = b"model_training" in cmdline or b"model_inference" in cmdline
    return state not in ("Z", "X") and is_job


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(pid, sig)


def _kill_if_alive(pid: int) -> None:
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """A person's words for a job process's exit status (negative: killed by a signal)."""
    if code < 0:
        return f"the job process was killed by signal {-code} ({signal.Signals(-code).name})"
    if code == 0:
        return "the job process exited with code 0 without reporting its result"
    return f"the job process exited with code {code}"


def _wait_and_record(process: subprocess.Popen[bytes]) -> None:
    code = process.wait()
    try:
        record_end(process.pid, describe_exit(code), exit_code=code)
    except DatabaseError:
        # The rows stay open: the next reconcile() records the end (without the exit code).
        log.exception("could not record the end of job process %s", process.pid)
    finally:
        with _watched_lock:
            _watched.pop(process.pid, None)
        connection.close()  # this thread's own database connection


def record_end(pid: int, reason: str, *, exit_code: int | None = None) -> None:
    """Record that process `pid` ended; fail its results/inferences that are still active.

    Idempotent: rows already ended are left alone, and the fail services change only active
    objects. A process that ends after its stop (its rows have `stop_requested`) fails nothing.
    """
    from backend.apps.inferences.services import inference_fail
    from backend.apps.training.services import result_fail

    close_old_connections()
    rows = list(JobProcess.objects.filter(pid=pid, ended_at__isnull=True))
    for row in rows:
        updated = JobProcess.objects.filter(pk=row.pk, ended_at__isnull=True).update(
            ended_at=timezone.now(), exit_code=exit_code, end_reason=reason
        )
        if not updated or row.stop_requested:
            continue
        tail = _tail(Path(row.log_path))
        message = f"{reason}.\n--- last lines of its log ---\n{tail}" if tail else f"{reason}."
        if row.kind == ProcessKind.RESULT:
            _fail_result_if_active(row.object_id, message, result_fail)
        else:
            inference_fail(inference_id=row.object_id, reason=message)


def _fail_result_if_active(result_id: int, message: str, result_fail: object) -> None:
    from backend.apps.training.models import ResultStatus, TrainingResult

    status = TrainingResult.objects.filter(pk=result_id).values_list("status", flat=True).first()
    if status in (ResultStatus.CREATED, ResultStatus.RUNNING):
        result_fail(result_id=result_id, reason=message)  # type: ignore[operator]


STACK_STOPPED = "the local stack was stopped while the job ran"


def stop_all_jobs(*, grace_s: float = 20.0) -> list[int]:
    """End every job process believed alive (SIGTERM, SIGKILL after `grace_s`); returns pids.

    For `kafkaml local down`: the jobs run in their own sessions, so stopping the backend does
    not end them. Their active results and inferences fail with STACK_STOPPED first, and the
    rows are marked stop-requested, so the exit the watcher records changes nothing more.
    """
    from backend.apps.inferences.services import inference_fail
    from backend.apps.training.services import result_fail

    rows = list(JobProcess.objects.filter(ended_at__isnull=True))
    for row in rows:
        if row.kind == ProcessKind.RESULT:
            _fail_result_if_active(row.object_id, f"{STACK_STOPPED}.", result_fail)
        else:
            inference_fail(inference_id=row.object_id, reason=f"{STACK_STOPPED}.")
    JobProcess.objects.filter(pk__in=[row.pk for row in rows]).update(stop_requested=True)
    live = sorted({row.pid for row in rows if _alive(row.pid)})
    for pid in live:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(pid) for pid in live) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in live:
        _kill_if_alive(pid)
    for pid in {row.pid for row in rows}:
        record_end(pid, STACK_STOPPED)
    return live


def watched_pids() -> set[int]:
    """The pids of children whose watcher thread has not recorded their end yet."""
    with _watched_lock:
        return set(_watched)


def reconcile(*, skip_watched: bool = True) -> list[int]:
    """Check every process believed alive; record those that are gone. Returns their pids.

    Processes that a watcher thread of this backend waits on are left to it (`skip_watched`;
    False checks them too, as a freshly started backend that watches nothing would). Call at
    start-up and now and then (`start_reconciler`).
    """
    with _watched_lock:
        watched = set(_watched) if skip_watched else set()
    gone: list[int] = []
    pids = set(JobProcess.objects.filter(ended_at__isnull=True).values_list("pid", flat=True))
    for pid in sorted(pids - watched):
        if not _alive(pid):
            record_end(pid, ENDED_UNWATCHED)
            gone.append(pid)
    return gone


def start_reconciler(interval_s: float = 30.0) -> threading.Thread:
    """A daemon thread that runs `reconcile()` now and every `interval_s` seconds."""

    def loop() -> None:
        stop = threading.Event()
        while True:
            try:
                reconcile()
            except Exception:  # a database hiccup must not end the loop; log and retry
                log.exception("reconcile failed")
            finally:
                connection.close()
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="kafkaml-reconciler", daemon=True)
    thread.start()
    return thread
