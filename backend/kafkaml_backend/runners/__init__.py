"""How the backend starts and stops jobs: one `Runner` interface, chosen by `KAFKAML_RUNNER`."""

from backend.kafkaml_backend.runners.base import JobKind, JobStatus, NoRunner, Runner, get_runner

__all__ = ["JobKind", "JobStatus", "NoRunner", "Runner", "get_runner"]
