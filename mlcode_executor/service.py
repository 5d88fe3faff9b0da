"""The executor as a small HTTP service (Kubernetes): `POST /<operation>` with a JSON request.

200 `{"result": {...}}`; 400 `{"message", "extra": {"type", "line", "field"}}` for bad code,
settings or artifacts; `GET /healthz` answers 200. Each request runs `sandbox.execute`, the same
code path as the client's local mode.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kafkaml.frameworks.errors import FrameworkError
from mlcode_executor.checks import OPERATIONS
from mlcode_executor.sandbox import (
    ExecutorBusy,
    ExecutorUnavailable,
    Slots,
    Spares,
    error_to_dict,
    execute,
)
from mlcode_executor.settings import ExecutorSettings

# Base64 artifacts of imported models can be large, but not unbounded.
MAX_BODY_BYTES = 512 * 1024 * 1024


class ExecutorServer(ThreadingHTTPServer):
    """The HTTP server and the spare sandboxes it hands requests to."""

    daemon_threads = True

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self.slots = Slots(settings.max_concurrent, settings.queue_wait_s)
        self.spares = Spares(settings.memory_bytes) if settings.spares else None
        super().__init__((settings.host, settings.port), _Handler)

    def server_close(self) -> None:
        """Stop listening and end the waiting spare sandboxes."""
        super().server_close()
        if self.spares is not None:
            self.spares.close()


def make_server(settings: ExecutorSettings) -> ExecutorServer:
    """An HTTP server (not yet serving) that validates with the settings' limits."""
    return ExecutorServer(settings)


class _Handler(BaseHTTPRequestHandler):
    server: ExecutorServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"message": "not found", "extra": {}})

    def do_POST(self) -> None:
        operation = self.path.strip("/")
        if operation not in OPERATIONS:
            self._reply(
                HTTPStatus.NOT_FOUND, {"message": f"no operation {operation!r}", "extra": {}}
            )
            return
        request = self._read_json()
        if request is None:
            return
        try:
            with self.server.slots.take():
                self._run(operation, request)
        except ExecutorBusy as exc:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"message": str(exc), "extra": {}})

    def _run(self, operation: str, request: dict[str, Any]) -> None:
        try:
            settings = self.server.settings
            result = execute(
                operation,
                request,
                timeout_s=settings.timeout_s,
                memory_bytes=settings.memory_bytes,
                spares=self.server.spares,
            )
        except ExecutorUnavailable as exc:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"message": str(exc), "extra": {}})
            return
        except FrameworkError as exc:
            error = error_to_dict(exc)
            body = {"message": error.pop("message"), "extra": error}
            self._reply(HTTPStatus.BAD_REQUEST, body)
            return
        self._reply(HTTPStatus.OK, {"result": result})

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "body too large", "extra": {}}
            )
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._reply(
                HTTPStatus.BAD_REQUEST, {"message": "body must be a JSON object", "extra": {}}
            )
            return None
        return body

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request on stderr, without the default's reverse DNS lookups.
        print(f"{self.address_string()} {format % args}", flush=True)
