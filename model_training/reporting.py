"""Where a job reports: the backend's job API over HTTP, or a local folder (no backend needed).

Both sinks offer the same calls for one training result: running, one call per epoch, the final
artifact with its metrics (status finished), a snapshot (indefinite training), and failure.

Reports to the job API are held and delivered in order by a thread of their own
(`HeldReports`): training goes on while the backend is away, and the reports arrive once it is
back; the job fails only when a report could not be delivered within the report deadline.

Local mode (`KAFKAML_TRAINING_OUTPUT_DIR`) writes, per result, `result-<id>/`:
`epochs.jsonl` (one JSON object per epoch), `metrics.json` (the final metrics), `artifact.<fmt>`,
`snapshots/<n>/` (artifact and metrics of each indefinite snapshot) and `status`
(`running`, `finished`, or `failed` then a newline and the reason).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import requests

from kafkaml.rest import BackendError, RestClient, Retries

log = logging.getLogger(__name__)

Metrics = Mapping[str, float]

# The backend may be restarting or overloaded: worth the wait. A 4xx will not change.
RETRIED_STATUSES = frozenset({429, *range(500, 600)})


class ReportingError(BackendError):
    """The job API could not be reached, or refused a report, after every retry; or the local
    spec file could not be read."""

    @classmethod
    def of(cls, error: BackendError) -> ReportingError:
        return cls(error.message, status=error.status, extra=error.extra)


class ResultSink(Protocol):
    """Reports of one training result."""

    result_id: int

    def running(self) -> None:
        """The job has started training this result."""

    def epoch(self, epoch: int, train: Metrics, validation: Metrics) -> None:
        """Metrics after one epoch (epochs count from 0 over the whole job)."""

    def finish(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        """The trained model and final metrics; the result becomes finished."""

    def snapshot(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        """An intermediate model worth keeping (indefinite training improved)."""

    def fail(self, reason: str) -> None:
        """The job failed for `reason`; the result becomes failed."""


class LocalResultSink:
    """Writes one result's reports under `<output_dir>/result-<id>/`."""

    def __init__(self, output_dir: Path, result_id: int) -> None:
        self.result_id = result_id
        self.folder = output_dir / f"result-{result_id}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._snapshots = 0

    def running(self) -> None:
        (self.folder / "status").write_text("running\n")

    def epoch(self, epoch: int, train: Metrics, validation: Metrics) -> None:
        line = {"epoch": epoch, "train": dict(train), "validation": dict(validation)}
        with (self.folder / "epochs.jsonl").open("a") as file:
            file.write(json.dumps(line) + "\n")

    def finish(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        _write_model(self.folder, artifact, artifact_format, metrics)
        (self.folder / "status").write_text("finished\n")

    def snapshot(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        self._snapshots += 1
        folder = self.folder / "snapshots" / str(self._snapshots)
        folder.mkdir(parents=True, exist_ok=True)
        _write_model(folder, artifact, artifact_format, metrics)

    def fail(self, reason: str) -> None:
        (self.folder / "status").write_text(f"failed\n{reason}\n")


def _write_model(
    folder: Path, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]
) -> None:
    (folder / f"artifact.{artifact_format}").write_bytes(artifact)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))


class JobApi:
    """The backend's job API for one result: bearer token, retries with exponential backoff.

    A connection error, a timeout or a 5xx/429 answer is retried `retries` times (1, 2, 4 ...
    seconds apart, at most 30), and on until `deadline_s` has passed when it is set; a 4xx
    answer is not. Raises ReportingError when a call fails.
    """

    def __init__(
        self,
        base_url: str,
        result_id: int,
        token: str,
        *,
        retries: int = 5,
        deadline_s: float | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.path = f"/api/jobs/results/{result_id}"
        # With a deadline, a backend that comes back is noticed within 10 s.
        backoff = Retries(count=retries, statuses=RETRIED_STATUSES, deadline_s=deadline_s,
                          max_backoff_s=10.0 if deadline_s else 30.0)  # fmt: skip
        self.rest = RestClient(
            base_url,
            token,
            timeout_s=timeout_s,
            retries=backoff,
            session=session,
        )

    def get_json(self, path: str) -> Any:
        try:
            return self.rest.get_json(f"{self.path}/{path}")
        except BackendError as error:
            raise ReportingError.of(error) from error

    def post(self, path: str, **kwargs: Any) -> None:
        try:
            self.rest.request("POST", f"{self.path}/{path}", **kwargs)
        except BackendError as error:
            raise ReportingError.of(error) from error


class HttpResultSink:
    """Reports one result to the backend's job API (see docs in contracts: Backend job API)."""

    def __init__(self, api: JobApi, result_id: int) -> None:
        self.api = api
        self.result_id = result_id

    def running(self) -> None:
        self.api.post("running")

    def epoch(self, epoch: int, train: Metrics, validation: Metrics) -> None:
        body = {"epoch": epoch, "train": dict(train), "validation": dict(validation)}
        self.api.post("epochs", json=body)

    def finish(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        self._upload("artifact", artifact, artifact_format, metrics)

    def snapshot(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        # The job API has no snapshot endpoint yet; this is the one the backend is asked to add.
        self._upload("snapshots", artifact, artifact_format, metrics)

    def fail(self, reason: str) -> None:
        self.api.post("failure", json={"reason": reason})

    def _upload(
        self, path: str, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]
    ) -> None:
        files = {"artifact": (f"model.{artifact_format}", artifact, "application/octet-stream")}
        data = {"metrics": json.dumps(metrics), "artifact_format": artifact_format}
        self.api.post(path, files=files, data=data)


_Report = tuple[str, tuple[Any, ...]]


class HeldReports:
    """A sink whose reports are delivered in order by a thread of their own, so training goes
    on while the backend is away (the wrapped sink retries until its deadline).

    `epoch` and `snapshot` return at once; `running`, `finish` and `fail` wait until every
    report is delivered. Once a delivery failed for good, every later call raises its
    ReportingError (the job then fails).
    """

    def __init__(self, sink: ResultSink) -> None:
        self.result_id = sink.result_id
        self._sink = sink
        self._queue: queue.Queue[_Report | None] = queue.Queue()
        self._error: ReportingError | None = None
        self._thread = threading.Thread(
            target=self._deliver, name=f"reports-{sink.result_id}", daemon=True
        )
        self._thread.start()

    def running(self) -> None:
        # Delivered before training starts: a result that cannot start (stopped, deleted)
        # ends the job now, not at its first epoch.
        self._hold("running")
        self.drain()

    def epoch(self, epoch: int, train: Metrics, validation: Metrics) -> None:
        self._hold("epoch", epoch, dict(train), dict(validation))

    def snapshot(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        self._hold("snapshot", artifact, artifact_format, metrics)

    def finish(self, artifact: bytes, artifact_format: str, metrics: Mapping[str, Any]) -> None:
        self._hold("finish", artifact, artifact_format, metrics)
        self.drain()

    def fail(self, reason: str) -> None:
        if self._error is None:
            self._queue.put(("fail", (reason,)))
            self.drain()
        else:  # what is held can no longer be delivered: the failure goes first, once
            self._sink.fail(reason)

    def drain(self) -> None:
        """Wait until every held report is delivered. Raises the ReportingError of one that
        could not be."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def _hold(self, call: str, *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((call, args))

    def _deliver(self) -> None:
        while True:
            report = self._queue.get()
            try:
                if report is not None and self._error is None:
                    call, args = report
                    getattr(self._sink, call)(*args)
            except ReportingError as error:
                log.error("result %s: a report could not be delivered: %s", self.result_id, error)
                self._error = error
            finally:
                self._queue.task_done()


SpecLoader = Callable[[], list[dict[str, Any]]]


def local_spec(path: Path) -> list[dict[str, Any]]:
    """The spec document(s) in a local spec file: one object, or a list (a chain, edge first).

    Raises ReportingError when the file cannot be read or is not JSON.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReportingError(f"cannot read the spec file {path}: {error}") from None
    return list(document) if isinstance(document, list) else [document]


def open_sinks(
    *,
    backend_url: str,
    result_ids: list[int],
    tokens: list[str],
    spec_file: Path | None,
    output_dir: Path | None,
    retries: int = 5,
    deadline_s: float | None = None,
) -> tuple[list[ResultSink], list[dict[str, Any]]]:
    """The sinks of the job's results and their spec documents, edge first for a chain.

    Local mode (a spec file and an output folder) when a spec file is given; otherwise the
    job API with one token per result (or one token for all), each call retried until
    `deadline_s` when it is set, and reports held (`HeldReports`). Raises ReportingError for an
    incomplete configuration or a backend that cannot be reached.
    """
    if spec_file is not None:
        return _local_sinks(spec_file, output_dir)
    if not result_ids:
        raise ReportingError("KAFKAML_RESULT_IDS is required with KAFKAML_BACKEND_URL")
    if len(tokens) not in (1, len(result_ids)):
        raise ReportingError("KAFKAML_JOB_TOKEN needs one token, or one per result id")
    apis = [
        JobApi(
            backend_url,
            result_id,
            tokens[min(i, len(tokens) - 1)],
            retries=retries,
            deadline_s=deadline_s,
        )
        for i, result_id in enumerate(result_ids)
    ]
    sinks: list[ResultSink] = [
        HeldReports(HttpResultSink(api, result_id))
        for api, result_id in zip(apis, result_ids, strict=True)
    ]
    return sinks, [api.get_json("spec") for api in apis]


def _local_sinks(
    spec_file: Path, output_dir: Path | None
) -> tuple[list[ResultSink], list[dict[str, Any]]]:
    if output_dir is None:
        raise ReportingError(
            "local mode (KAFKAML_TRAINING_SPEC_FILE) needs KAFKAML_TRAINING_OUTPUT_DIR"
        )
    documents = local_spec(spec_file)
    ids = [document.get("result_id") for document in documents]
    if not all(isinstance(result_id, int) for result_id in ids):
        raise ReportingError(f"every spec document in {spec_file} needs an integer result_id")
    sinks: list[ResultSink] = [LocalResultSink(output_dir, int(i)) for i in ids]  # type: ignore[arg-type]
    return sinks, documents
