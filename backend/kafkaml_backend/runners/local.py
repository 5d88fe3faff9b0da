"""The `local` runner: jobs as child processes of the backend on this machine.

A training job (`python -m model_training`) runs per training result, or per chain with
`KAFKAML_RESULT_IDS` edge first and one job token per result; an inference runs one
`python -m model_inference` per replica with `KAFKAML_INFERENCE_REPLICA=<i>`. Each child is the
leader of its own process group (stopping it reaches whatever it started), writes stdout and
stderr to `<data dir>/logs/`, and has its pid in `JobProcess` rows.

Two things notice a job's end: a watcher thread per child this process started (`wait()`, so the
exit code is exact), and `reconcile()`, which checks the rows against the operating system and
covers processes that ended while no backend watched them (a restart). A training job that ends
while its result is still created or running fails the result with the reason and its log tail.

Inference replicas are supervised as a Kubernetes Deployment's pods are: a replica that exits
unasked is started again under the same replica number (its transactional id fences the old
one) after a backoff (`KAFKAML_RESTART_BACKOFF_S` doubling to `KAFKAML_RESTART_BACKOFF_MAX_S`,
back to the start once a replica ran `KAFKAML_RESTART_RESET_S`). The inference records ready
replicas (processes up), restarts and the last exit reason; it fails only when one replica
crashed `KAFKAML_CRASH_LOOP_LIMIT` times in a row, and then its other replicas are stopped. A
process that ends after a stop changes nothing (the stop service already set the status).
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
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from backend.apps.processes.models import JobProcess, ProcessKind
from backend.kafkaml_backend.auth import issue_job_token
from backend.kafkaml_backend.config import PROJECT_ROOT
from backend.kafkaml_backend.runners import events
from backend.kafkaml_backend.runners.base import JobKind, JobStatus
from kafkaml.egress import Endpoint, cluster_endpoints, off_host, url_endpoint
from kafkaml.kafka import KafkaSettings
from kafkaml.sandbox import Sandbox, carries, kill_group, kill_launch

log = logging.getLogger(__name__)
STOP_GRACE_S = 20.0
LOG_TAIL_BYTES = 4000
ENDED_UNWATCHED = "the process ended while the backend was not watching"
# How long the reconciler leaves a replica that just ended to the watcher that saw it end.
RESTART_GRACE_S = 10.0

# Children this backend process started and whose watcher thread still waits on them, by pid:
# the reconciler leaves these to their watcher (it alone can read their exit code).
_watched: dict[int, subprocess.Popen[bytes]] = {}
_watched_lock = threading.Lock()

# Restarts waiting out their backoff, by (inference id, replica).
_pending: dict[tuple[int, int], threading.Timer] = {}
_pending_lock = threading.Lock()
_restart_lock = threading.Lock()


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed replica starts again, and when its inference gives up (backend settings)."""

    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    reset_s: float = 300.0
    crash_loop_limit: int = 5

    @classmethod
    def from_settings(cls) -> RestartPolicy:
        config = settings.KAFKAML
        return cls(config.restart_backoff_s, config.restart_backoff_max_s,
                   config.restart_reset_s, config.crash_loop_limit)  # fmt: skip

    def backoff(self, crashes: int) -> float:
        """The wait before restarting a replica after its `crashes`-th crash in a row."""
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(crashes - 1, 0)))


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

    def start_training(self, result_ids: Sequence[int], *, deployment_id: int, gpus: int) -> None:
        """One `model_training` process for `result_ids` (one result, or a chain edge first);
        local jobs train on the CPU (`gpus` is not used)."""
        ids = list(result_ids)
        log_path = self.logs_dir / f"training-{'-'.join(map(str, ids))}.log"
        env = {
            "KAFKAML_RESULT_IDS": ",".join(map(str, ids)),
            "KAFKAML_JOB_TOKEN": ",".join(issue_job_token("result", pk) for pk in ids),
        }
        try:
            process, marker = self._spawn("model_training", env, log_path)
        except OSError as error:  # no log folder, no interpreter: the result says why
            for pk in ids:
                events.results().result_failed(pk, f"the job process did not start: {error}")
            return
        JobProcess.objects.bulk_create(
            JobProcess(
                kind=ProcessKind.RESULT,
                object_id=pk,
                pid=process.pid,
                launch_marker=marker,
                log_path=str(log_path),
            )
            for pk in ids
        )
        self._watch(process, marker)

    def start_inference(self, inference_id: int, replicas: int) -> None:
        """`replicas` `model_inference` processes."""
        self._start_replicas(inference_id, range(replicas))

    def _start_replicas(self, inference_id: int, replicas: Iterable[int]) -> None:
        brokers = events.inferences().inference_brokers(inference_id)
        for replica in replicas:
            try:
                row = self._start_replica(inference_id, replica, brokers)
            except OSError as error:
                reason = f"replica {replica} did not start: {error}"
                events.inferences().inference_failed(inference_id, reason)
                _stop_rows(_live(ProcessKind.INFERENCE, inference_id))
                return
            if not _still_wanted(inference_id, replica):
                # A stop or scale-down committed while this replica started: it saw no row.
                _stop_rows([row])
        _record_health(inference_id)

    def _start_replica(
        self, inference_id: int, replica: int, brokers: Sequence[str] = ()
    ) -> JobProcess:
        """Spawn replica `replica` and record its row. Raises OSError when it cannot start.
        `brokers`: the inference's own bootstrap lists (per direction)."""
        log_path = self.logs_dir / f"inference-{inference_id}-{replica}.log"
        env = {
            "KAFKAML_INFERENCE_ID": str(inference_id),
            "KAFKAML_INFERENCE_REPLICA": str(replica),
            "KAFKAML_JOB_TOKEN": issue_job_token("inference", inference_id),
        }
        process, marker = self._spawn("model_inference", env, log_path, brokers)
        row = JobProcess.objects.create(
            kind=ProcessKind.INFERENCE,
            object_id=inference_id,
            replica=replica,
            pid=process.pid,
            launch_marker=marker,
            log_path=str(log_path),
        )
        self._watch(process, marker)
        return row

    def _spawn(
        self, module: str, job_env: Mapping[str, str], log_path: Path, brokers: Sequence[str] = ()
    ) -> tuple[subprocess.Popen[bytes], str]:
        """The started job process and its launch's marker. Raises OSError."""
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
        # User code: in the sandbox (kafkaml.sandbox), with routes to the brokers and the job
        # API only and the Kafka TLS files, but neither the data dir nor the backend's processes.
        kafka = self.kafka
        tls = (kafka.ssl_ca_location, kafka.ssl_certificate_location, kafka.ssl_key_location)
        launch = Sandbox.from_settings().launch(
            [sys.executable, "-m", module],
            env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
            network=self._egress(brokers),
            die_with_parent=False,  # jobs outlive a backend restart; reconcile() finds them
            hidden=[Path(settings.KAFKAML.data_dir)],
            files=[Path(name) for name in tls if name],
        )
        try:
            with log_path.open("ab") as log:
                process = subprocess.Popen(
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
        return process, launch.marker

    def _egress(self, brokers: Sequence[str]) -> list[Endpoint]:
        """Where a job may connect: the cluster's brokers (as its metadata advertises them), the
        job API, and the brokers an inference names itself unless they are on this machine."""
        allowed = [*cluster_endpoints(self.kafka), url_endpoint(settings.KAFKAML.backend_url)]
        for servers in brokers:
            allowed += off_host(cluster_endpoints(self.kafka.with_bootstrap(servers)))
        return allowed

    def _watch(self, process: subprocess.Popen[bytes], marker: str) -> None:
        with _watched_lock:
            _watched[process.pid] = process
        threading.Thread(
            target=_wait_and_record,
            args=(process, marker),
            name=f"job-{process.pid}",
            daemon=True,
        ).start()

    # --- stopping and changing ------------------------------------------------------------

    def stop_training(self, result_id: int) -> None:
        self._stop(JobProcess.objects.filter(kind=ProcessKind.RESULT, object_id=result_id))

    def stop_inference(self, inference_id: int) -> None:
        _cancel_restarts(inference_id)
        _stop_rows(_live(ProcessKind.INFERENCE, inference_id))
        _record_health(inference_id)

    def scale_inference(self, inference_id: int, replicas: int) -> None:
        """Start the missing replicas, stop those numbered `replicas` and above."""
        _cancel_restarts(inference_id, from_replica=replicas)
        live = _live(ProcessKind.INFERENCE, inference_id)
        _stop_rows([row for row in live if row.replica >= replicas])
        running = {row.replica for row in live if row.replica < replicas}
        with _pending_lock:
            waiting = {replica for (pk, replica) in _pending if pk == inference_id}
        missing = [i for i in range(replicas) if i not in running | waiting]
        self._start_replicas(inference_id, missing)

    def swap_inference_model(self, inference_id: int) -> None:
        """Nothing to do: replicas poll their spec and load the new model version themselves
        (`KAFKAML_INFERENCE_SPEC_POLL_S`), without a restart and without losing a batch."""
        return None

    def _stop(self, rows: Iterable[JobProcess]) -> None:
        _stop_rows(rows)

    # --- looking --------------------------------------------------------------------------

    def status(self, kind: JobKind, object_id: int) -> JobStatus:
        rows = list(JobProcess.objects.filter(kind=kind.value, object_id=object_id))
        if not rows:
            return JobStatus(state="not-started")
        live = [row for row in rows if row.ended_at is None]
        if live:
            detail = ", ".join(f"replica {r.replica}: pid {r.pid}" for r in live)
            if kind is JobKind.RESULT:
                detail = f"pids {sorted({r.pid for r in live})}"
            return JobStatus(state="running", detail=detail)
        last = rows[-1]
        return JobStatus(state="exited", detail=last.end_reason)

    def logs(self, kind: JobKind, object_id: int) -> str:
        rows = JobProcess.objects.filter(kind=kind.value, object_id=object_id)
        paths = list(dict.fromkeys(row.log_path for row in rows))
        return "\n".join(_tail(Path(path)) for path in paths)


def _live(kind: str, object_id: int) -> list[JobProcess]:
    return list(JobProcess.objects.filter(kind=kind, object_id=object_id, ended_at__isnull=True))


def _stop_rows(rows: Iterable[JobProcess]) -> None:
    """SIGTERM to each row's process group now, SIGKILL after STOP_GRACE_S if it remains."""
    launches: set[tuple[int, str]] = set()
    for row in rows:
        if row.ended_at is not None:
            continue
        JobProcess.objects.filter(pk=row.pk).update(stop_requested=True)
        launches.add((row.pid, row.launch_marker))
    for pid, marker in launches:
        if _alive(pid, marker):
            _signal_group(pid, signal.SIGTERM)
            timer = threading.Timer(STOP_GRACE_S, _kill_if_alive, args=(pid, marker))
            timer.daemon = True
            timer.start()


def _tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    """The last `size` bytes of a log file as text ("" when it is missing)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - size))
            return file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _alive(pid: int, marker: str = "") -> bool:
    """Whether `pid` is a live (not zombie) kafkaml job process: the one launched with `marker`
    (`JobProcess.launch_marker`), not one that reuses its pid; any job process for "" (rows
    from before markers)."""
    if marker:
        return carries(pid, marker)
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


def _kill_if_alive(pid: int, marker: str = "") -> None:
    if _alive(pid, marker):
        _signal_group(pid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """A person's words for a job process's exit status (negative: killed by a signal)."""
    if code < 0:
        return f"the job process was killed by signal {-code} ({signal.Signals(-code).name})"
    if code == 0:
        return "the job process exited with code 0 without reporting its result"
    return f"the job process exited with code {code}"


def _wait_and_record(process: subprocess.Popen[bytes], marker: str) -> None:
    with contextlib.suppress(ChildProcessError):  # only this thread reaps it; if not, go on
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped
    # Whatever is left in its group lost its parent (say the outer bwrap was killed alone): a
    # replica's would serve on, reparented, and fence the replica that replaces it.
    if left := kill_group(process.pid):
        log.info("job process %s ended; killed what was left in its group: %s", process.pid, left)
    code = process.wait()
    try:
        record_end(process.pid, describe_exit(code), exit_code=code, marker=marker)
    except Exception:  # the thread's top: the next reconcile() records what is left open
        log.exception("could not record the end of job process %s", process.pid)
    finally:
        with _watched_lock:
            _watched.pop(process.pid, None)
        connection.close()  # this thread's own database connection


def record_end(
    pid: int, reason: str, *, exit_code: int | None = None, marker: str | None = None
) -> None:
    """Record that process `pid` ended: fail its results that are still active, restart the
    inference replica it was (or fail the inference past the crash-loop limit). `marker`: only
    the rows of that launch (a row of an earlier process with the same pid is left open);
    None: every row of `pid`.

    Idempotent: rows already ended are left alone, and the services change only active
    objects. A process that ends after its stop (its rows have `stop_requested`) changes nothing.
    """
    close_old_connections()
    rows = JobProcess.objects.filter(pid=pid, ended_at__isnull=True)
    if marker is not None:
        rows = rows.filter(launch_marker=marker)
    for row in list(rows):
        updated = JobProcess.objects.filter(pk=row.pk, ended_at__isnull=True).update(
            ended_at=timezone.now(), exit_code=exit_code, end_reason=reason
        )
        if not updated or row.stop_requested:
            continue
        tail = _tail(Path(row.log_path))
        message = f"{reason}.\n--- last lines of its log ---\n{tail}" if tail else f"{reason}."
        if row.kind == ProcessKind.RESULT:
            events.results().result_failed(row.object_id, message)
        else:
            _replica_exited(row, reason, message)


def _replica_exited(row: JobProcess, reason: str, message: str) -> None:
    """A replica exited unasked: schedule its restart, or fail the inference in a crash loop."""
    if not _inference_active(row.object_id):
        return
    policy = RestartPolicy.from_settings()
    crashes = _consecutive_crashes(row.object_id, row.replica, policy)
    if crashes >= policy.crash_loop_limit:
        events.inferences().inference_failed(
            row.object_id,
            f"replica {row.replica} crashed {crashes} times in a row, each within "
            f"{policy.reset_s:g} s of starting (crash loop); the last time: {message}",
        )
        _cancel_restarts(row.object_id)
        _stop_rows(_live(ProcessKind.INFERENCE, row.object_id))
        _record_health(row.object_id, last_exit_reason=f"replica {row.replica}: {reason}")
        return
    delay = policy.backoff(crashes)
    log.warning("inference %s replica %s: %s; restarting it in %g s",
                row.object_id, row.replica, reason, delay)  # fmt: skip
    _record_health(row.object_id, last_exit_reason=f"replica {row.replica}: {reason}")
    _schedule_restart(row.object_id, row.replica, delay)


def _consecutive_crashes(inference_id: int, replica: int, policy: RestartPolicy) -> int:
    """Unasked exits of `replica` in a row, newest first, up to one that ran `reset_s`."""
    rows = JobProcess.objects.filter(
        kind=ProcessKind.INFERENCE, object_id=inference_id, replica=replica
    ).order_by("-pk")
    crashes = 0
    for row in rows:
        if row.ended_at is None or row.stop_requested:
            break
        crashes += 1
        if (row.ended_at - row.started_at).total_seconds() >= policy.reset_s:
            break
    return crashes


def _inference_active(inference_id: int) -> bool:
    return inference_id in events.inferences().active_replicas([inference_id])


def _still_wanted(inference_id: int, replica: int) -> bool:
    """Whether the inference is active and runs at least `replica + 1` replicas."""
    return events.inferences().active_replicas([inference_id]).get(inference_id, 0) > replica


def _record_health(inference_id: int, *, last_exit_reason: str = "") -> None:
    """Write the inference's ready replicas and restarts as the rows and the OS show them."""
    rows = JobProcess.objects.filter(kind=ProcessKind.INFERENCE, object_id=inference_id)
    ready = sum(1 for row in rows if row.ended_at is None and _alive(row.pid, row.launch_marker))
    restarts = rows.filter(ended_at__isnull=False, stop_requested=False).count()
    events.inferences().inference_replicas(inference_id, ready=ready, restarts=restarts,
                                           last_exit_reason=last_exit_reason)  # fmt: skip


def _schedule_restart(inference_id: int, replica: int, delay_s: float) -> None:
    timer = threading.Timer(delay_s, _restart_replica, args=(inference_id, replica))
    timer.daemon = True
    with _pending_lock:
        previous = _pending.pop((inference_id, replica), None)
        if previous is not None:
            previous.cancel()
        _pending[(inference_id, replica)] = timer
    timer.start()


def _cancel_restarts(inference_id: int, *, from_replica: int = 0) -> None:
    with _pending_lock:
        for key in [k for k in _pending if k[0] == inference_id and k[1] >= from_replica]:
            _pending.pop(key).cancel()


def cancel_restarts() -> None:
    """Cancel every restart waiting in this process (the stack stops, a test ends)."""
    with _pending_lock:
        for timer in _pending.values():
            timer.cancel()
        _pending.clear()
    with _restart_lock:  # a restart under way finishes first: its process then has its row
        pass


def pending_restarts() -> set[tuple[int, int]]:
    """(inference id, replica) of the restarts waiting out their backoff in this process."""
    with _pending_lock:
        return set(_pending)


def _restart_replica(inference_id: int, replica: int) -> None:
    """The timer's target: start the replica again unless it is no longer wanted or runs."""
    with _pending_lock:
        _pending.pop((inference_id, replica), None)
    try:
        close_old_connections()
        with _restart_lock:  # this process's watchers and reconciler never start one twice
            live = _live(ProcessKind.INFERENCE, inference_id)
            if not _still_wanted(inference_id, replica):
                return
            if any(row.replica == replica for row in live):
                return
            log.info("inference %s: restarting replica %s", inference_id, replica)
            LocalRunner()._start_replicas(inference_id, [replica])
    except Exception:  # a timer thread's top: the reconciler tries again later
        log.exception("could not restart inference %s replica %s", inference_id, replica)
    finally:
        connection.close()


STACK_STOPPED = "the local stack was stopped while the job ran"


def stop_all_jobs(*, grace_s: float = 20.0) -> list[int]:
    """End every job process believed alive (SIGTERM, SIGKILL after `grace_s`); returns pids.

    For `kafkaml local down`: the jobs run in their own sessions, so stopping the backend does
    not end them. Their active results and inferences fail with STACK_STOPPED first, and the
    rows are marked stop-requested, so the exit the watcher records changes nothing more.
    """
    rows = list(JobProcess.objects.filter(ended_at__isnull=True))
    for row in rows:
        try:
            if row.kind == ProcessKind.RESULT:
                events.results().result_failed(row.object_id, f"{STACK_STOPPED}.")
            else:
                events.inferences().inference_failed(row.object_id, f"{STACK_STOPPED}.")
        except Exception:  # a row whose object is gone or broken must not keep the others up
            log.exception("could not record the stop on %s", row)
    JobProcess.objects.filter(pk__in=[row.pk for row in rows]).update(stop_requested=True)
    cancel_restarts()
    live = sorted(
        {(row.pid, row.launch_marker) for row in rows if _alive(row.pid, row.launch_marker)}
    )
    for pid, _ in live:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(*launch) for launch in live) and time.monotonic() < deadline:
        time.sleep(0.2)
    for launch in live:
        _kill_if_alive(*launch)
    for pid in {row.pid for row in rows}:
        try:
            record_end(pid, STACK_STOPPED)
        except Exception:
            log.exception("could not record the end of job process %s", pid)
    return [pid for pid, _ in live]


def watched_pids() -> set[int]:
    """The pids of children whose watcher thread has not recorded their end yet."""
    with _watched_lock:
        return set(_watched)


def reconcile(*, skip_watched: bool = True) -> list[int]:
    """Check every process believed alive; record those that are gone. Returns their pids.

    A job whose first process is gone may have left the rest of its sandbox running (a link of
    it died alone while nobody watched): whatever carries its launch's marker is killed first,
    and nothing else, however its pids were reused (`kafkaml.sandbox.kill_launch`). Rows from
    before markers are only recorded.

    Processes that a watcher thread of this backend waits on are left to it (`skip_watched`;
    False checks them too, as a freshly started backend that watches nothing would). Call at
    start-up and now and then (`start_reconciler`). A row that cannot be recorded is logged and
    the others are still checked.
    """
    with _watched_lock:
        watched = set(_watched) if skip_watched else set()
    gone: list[int] = []
    rows = JobProcess.objects.filter(ended_at__isnull=True)
    launches = set(rows.values_list("pid", "launch_marker"))
    for pid, marker in sorted(launch for launch in launches if launch[0] not in watched):
        if _alive(pid, marker):
            continue
        if marker and (left := kill_launch(marker)):
            log.warning("job process %s ended unwatched; killed what was left of it: %s",
                        pid, left)  # fmt: skip
        try:
            record_end(pid, ENDED_UNWATCHED, marker=marker)
        except Exception:
            log.exception("could not record the end of job process %s", pid)
        gone.append(pid)
    return gone


def supervise_inferences() -> list[tuple[int, int]]:
    """Restart, after their backoff, the replicas of active inferences that no process runs and
    no restart waits for (their backend restarted meanwhile, or a restart failed). Returns the
    (inference, replica) pairs scheduled. Only inferences this runner started are looked at.
    """
    policy = RestartPolicy.from_settings()
    started = JobProcess.objects.filter(kind=ProcessKind.INFERENCE).values_list("object_id")
    active = events.inferences().active_replicas({pk for (pk,) in started})
    scheduled: list[tuple[int, int]] = []
    for inference_id, replicas in sorted(active.items()):
        rows = list(JobProcess.objects.filter(kind=ProcessKind.INFERENCE, object_id=inference_id))
        running = {row.replica for row in rows if row.ended_at is None}
        for replica in range(replicas):
            if replica in running or (inference_id, replica) in pending_restarts():
                continue
            if _ended_recently(rows, replica, policy):
                continue  # its watcher, maybe in another backend process, restarts it
            crashes = _consecutive_crashes(inference_id, replica, policy)
            _schedule_restart(inference_id, replica, policy.backoff(crashes))
            scheduled.append((inference_id, replica))
        _record_health(inference_id)
    return scheduled


def _ended_recently(rows: Sequence[JobProcess], replica: int, policy: RestartPolicy) -> bool:
    ended = [row.ended_at for row in rows if row.replica == replica and row.ended_at]
    if not ended:
        return False
    since = (timezone.now() - max(ended)).total_seconds()
    return since < policy.backoff_max_s + RESTART_GRACE_S


def start_reconciler(interval_s: float = 30.0) -> threading.Thread:
    """A daemon thread that runs `reconcile()` and `supervise_inferences()` now and every
    `interval_s` seconds."""

    def loop() -> None:
        stop = threading.Event()
        while True:
            for step in (reconcile, supervise_inferences):
                try:
                    step()
                except Exception:  # a database hiccup must not end the loop; log and retry
                    log.exception("%s failed", step.__name__)
                finally:
                    connection.close()
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="kafkaml-reconciler", daemon=True)
    thread.start()
    return thread
