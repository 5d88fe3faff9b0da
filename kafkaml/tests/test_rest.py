"""The REST client against a real HTTP server on loopback that serves canned answers."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kafkaml import cli
from kafkaml.client import Client, KafkamlError
from kafkaml.rest import BackendError, BackendTimeout, RestClient, Retries

TOKEN = "job-token-7f3a"
FAST = Retries(count=3, backoff_s=0.01)


@dataclass
class Answer:
    status: int
    body: Any = None
    delay_s: float = 0.0  # how long the server takes to answer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CannedServer:
    """Answers requests with `answers` in order (the last one again when they run out)."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        self.seen.append(
            Seen(handler.command, handler.path, dict(handler.headers), handler.rfile.read(length))
        )
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        time.sleep(answer.delay_s)  # a slow backend, not a wait for a condition
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[CannedServer]:
    canned: CannedServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            canned.answer(self)

        def do_POST(self) -> None:
            canned.answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test asserts on what the server saw, not on its access log

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    canned = CannedServer(url=f"http://127.0.0.1:{http.server_address[1]}/")
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield canned
    http.shutdown()
    http.server_close()
    thread.join(10)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_request_joins_the_path_to_the_base_url_and_sends_the_bearer_token_and_json(
    server: CannedServer,
) -> None:
    server.answers = [Answer(201, {"id": 7})]
    client = RestClient(server.url, TOKEN)

    response = client.request("POST", "/api/jobs/datasources", json={"offset": 3})

    assert response.json() == {"id": 7}
    [seen] = server.seen
    assert (seen.method, seen.path) == ("POST", "/api/jobs/datasources")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(seen.body) == {"offset": 3}


def test_a_503_is_retried_until_the_backend_answers(
    server: CannedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.answers = [Answer(503, {"message": "restarting"})] * 2 + [Answer(200, {"ok": True})]
    client = RestClient(server.url, TOKEN, retries=FAST)

    with caplog.at_level(logging.WARNING, logger="kafkaml.rest"):
        assert client.get_json("/api/jobs/results/1/spec") == {"ok": True}

    assert len(server.seen) == 3
    assert all(seen.headers["Authorization"] == f"Bearer {TOKEN}" for seen in server.seen)
    assert len(caplog.records) == 2
    assert not any(TOKEN in record.getMessage() for record in caplog.records)


def test_a_4xx_raises_at_once_with_the_backends_message_and_extra(server: CannedServer) -> None:
    body = {"message": "Unknown deployment", "extra": {"fields": {"deployment_id": ["no"]}}}
    server.answers = [Answer(400, body)]
    client = RestClient(server.url, TOKEN, retries=FAST)

    with pytest.raises(BackendError) as raised:
        client.request("POST", "/api/jobs/datasources", json={})

    assert len(server.seen) == 1
    assert raised.value.status == 400
    assert raised.value.extra == body["extra"]
    assert raised.value.message.endswith("answered 400: Unknown deployment")
    assert TOKEN not in str(raised.value)


def test_a_5xx_that_is_not_retried_raises_at_once(server: CannedServer) -> None:
    server.answers = [Answer(500, {"message": "bug"}), Answer(200, {})]
    client = RestClient(server.url, TOKEN, retries=FAST)

    with pytest.raises(BackendError) as raised:
        client.request("GET", "/x")

    assert len(server.seen) == 1
    assert raised.value.status == 500


def test_a_backend_that_stays_unavailable_raises_its_last_answer_after_every_retry(
    server: CannedServer,
) -> None:
    server.answers = [Answer(503, {"message": "restarting"})]
    client = RestClient(server.url, TOKEN, retries=FAST)

    with pytest.raises(BackendError) as raised:
        client.request("GET", "/x")

    assert len(server.seen) == FAST.count + 1
    assert raised.value.status == 503
    assert "restarting" in raised.value.message and "after 4 attempts" in raised.value.message


def test_a_refused_connection_is_retried_then_raises_without_a_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = RestClient(closed_port_url(), TOKEN, retries=FAST, timeout_s=5)

    with (
        caplog.at_level(logging.WARNING, logger="kafkaml.rest"),
        pytest.raises(BackendError) as raised,
    ):
        client.request("GET", "/api/jobs/inferences/1/spec")

    assert raised.value.status is None
    assert "after 4 attempts" in raised.value.message
    assert len(caplog.records) == FAST.count
    assert not any(TOKEN in record.getMessage() for record in caplog.records)


def test_without_retries_a_refused_connection_raises_after_one_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = RestClient(closed_port_url(), TOKEN, timeout_s=5)

    with (
        caplog.at_level(logging.WARNING, logger="kafkaml.rest"),
        pytest.raises(BackendError) as raised,
    ):
        client.request("POST", "/api/jobs/datasources", json={})

    assert raised.value.status is None
    assert "failed" in raised.value.message and "attempts" not in raised.value.message
    assert not caplog.records


def test_a_body_that_is_not_json_raises_a_backend_error(server: CannedServer) -> None:
    server.answers = [Answer(200)]
    client = RestClient(server.url, TOKEN)

    with pytest.raises(BackendError, match="no JSON"):
        client.get_json("/api/jobs/results/1/spec")


def test_no_answer_in_time_raises_a_timeout_that_says_the_request_may_still_complete(
    server: CannedServer,
) -> None:
    server.answers = [Answer(201, {"id": 7}, delay_s=3)]
    client = RestClient(server.url, TOKEN, timeout_s=0.5)

    with pytest.raises(BackendTimeout) as raised:
        client.request("POST", "/api/models", json={})

    assert raised.value.status is None
    assert "did not answer within 0.5 s" in raised.value.reason
    assert "may still complete" in raised.value.reason
    assert len(server.seen) == 1  # sent once: without retries a create is not repeated


def test_a_requests_own_time_limit_replaces_the_clients(server: CannedServer) -> None:
    server.answers = [Answer(201, {"id": 7}, delay_s=1)]
    client = RestClient(server.url, TOKEN, timeout_s=0.2)

    response = client.request("POST", "/api/models", json={}, timeout_s=30)

    assert response.json() == {"id": 7}


MODEL = {
    "id": 3, "name": "net", "framework": "pytorch", "code": "", "imports": "",
    "description": "", "distributed": False, "upper_id": None, "summary": {},
    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
}  # fmt: skip


def test_the_python_client_waits_its_create_timeout_for_a_create_and_says_what_to_check(
    server: CannedServer,
) -> None:
    server.answers = [Answer(201, MODEL, delay_s=1), Answer(200, [], delay_s=1)]
    client = Client(server.url, token=TOKEN, timeout_s=0.3, create_timeout_s=30)

    created = client.models.create(name="net", framework="pytorch", code="")
    with pytest.raises(KafkamlError) as raised:
        client.models.list()  # an ordinary call: the ordinary limit
    server.answers = [Answer(201, MODEL, delay_s=3)]
    slow = Client(server.url, token=TOKEN, create_timeout_s=0.5)
    with pytest.raises(KafkamlError) as create_raised:
        slow.models.create(name="net", framework="pytorch", code="")

    assert created.id == 3
    assert "KAFKAML_CLIENT_TIMEOUT_S" in str(raised.value)
    message = str(create_raised.value)
    assert "did not answer within 0.5 s" in message and "may still complete" in message
    assert "kafkaml models list" in message and "KAFKAML_CLIENT_CREATE_TIMEOUT_S" in message


def test_the_cli_reads_the_create_timeout_from_the_environment_and_prints_what_happened(
    server: CannedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("KAFKAML_CLIENT_CREATE_TIMEOUT_S", "0.5")
    (tmp_path / "net.py").write_text("model = None\n")
    server.answers = [Answer(200, {"id": 1, "username": "ada"}), Answer(201, MODEL, delay_s=3)]
    assert cli.main(["login", "--url", server.url, "--token", TOKEN]) == 0

    code = cli.main(
        ["models", "create", "net", "--framework", "pytorch", "--code", str(tmp_path / "net.py")]
    )

    error = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "did not answer within 0.5 s" in error and "may still complete" in error
    assert "kafkaml models list" in error and "Traceback" not in error
