"""The HTTP client of the backend's REST API that every worker builds its calls on.

One base URL, one bearer token, JSON in and out, a time limit per request, and retries with
exponential backoff when the backend did not answer or answered one of the retried statuses.
Any other answer of 400 or above becomes a `BackendError` carrying the status and the backend's
uniform error body (`{"message": ..., "extra": {...}}`). The token is sent in a header and
appears in no log line and no error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger(__name__)

# How much of a response that is not the uniform error body an error message quotes.
_QUOTED_TEXT_CHARS = 200


class BackendError(RuntimeError):
    """The backend refused a request (`status` 400 or above) or could not be reached
    (`status` None). `extra` holds the `extra` object of the backend's error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}
        # What went wrong without the request's method and URL: the backend's own message,
        # or the transport's error. For people (the CLI prints it); `message` is for logs.
        self.reason = reason or message


class BackendTimeout(BackendError):
    """The request was sent but no answer came within the time limit: the backend may still
    carry it out (a create call may still create), so look before sending it again."""


@dataclass(frozen=True)
class Retries:
    """How a request that got no answer, or a status in `statuses`, is tried again: `count`
    more times, `backoff_s` seconds before the first retry, doubling up to `max_backoff_s`;
    and, when `deadline_s` is set, on and on until `deadline_s` have passed since the first
    attempt (a job that outlives a backend outage)."""

    count: int = 0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    statuses: frozenset[int] = frozenset({502, 503, 504})
    deadline_s: float | None = None

    def another(self, attempts: int, started: float) -> bool:
        """Whether to try again after `attempts` attempts, the first at `started` (monotonic)."""
        if attempts <= self.count:
            return True
        return self.deadline_s is not None and time.monotonic() - started < self.deadline_s

    def delay_s(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (counting from 0)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2**retry))


class RestClient:
    """Requests to one backend with one token; paths are joined to `base_url`.

    `scheme` names the token's kind in the Authorization header: `Bearer` for a job's or a
    service's token, `Token` for a user's API token. Without a token no header is sent (the
    public endpoints, and a session login that then asks for a token).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        scheme: str = "Bearer",
        timeout_s: float = 30.0,
        retries: Retries = Retries(),
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self._session = session or requests.Session()
        if token is not None:
            self.set_token(token, scheme=scheme)

    def set_token(self, token: str, *, scheme: str = "Bearer") -> None:
        """Send `token` on every later request."""
        self._session.headers["Authorization"] = f"{scheme} {token}"

    @property
    def cookies(self) -> requests.cookies.RequestsCookieJar:
        """The session's cookies (a session login's, and its CSRF token)."""
        return self._session.cookies

    def url(self, path: str) -> str:
        """The absolute URL of `path` (which starts with `/`)."""
        return f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> requests.Response:
        """The backend's answer (status below 400), after the retries that were needed;
        `timeout_s` replaces the client's time limit for this request's attempts.

        Raises BackendError for any other answer, or when no answer came after every retry
        (BackendTimeout when the last attempt was sent and got no answer in time); success
        says nothing about the body (see `get_json`).
        """
        url = self.url(path)
        started = time.monotonic()
        sent = {
            "json": json, "data": data, "files": files, "params": params, "headers": headers,
            "timeout": self.timeout_s if timeout_s is None else timeout_s,
        }  # fmt: skip
        outcome = self._attempt(method, url, **sent)
        attempts = 1
        while self._retryable(outcome) and self.retries.another(attempts, started):
            delay = self.retries.delay_s(attempts - 1)
            log.warning("%s; retrying in %.1f s", outcome, delay)
            time.sleep(delay)  # backoff between attempts, not a wait for a condition
            outcome = self._attempt(method, url, **sent)
            attempts += 1
        if isinstance(outcome, requests.Response):
            return outcome
        if attempts == 1 or not self._retryable(outcome):
            raise outcome
        message = f"{outcome} (after {attempts} attempts)"
        raise type(outcome)(
            message, status=outcome.status, extra=outcome.extra, reason=outcome.reason
        ) from outcome

    def get_json(self, path: str) -> Any:
        """The JSON document at `path`. Raises BackendError, also when the body is not JSON."""
        response = self.request("GET", path)
        try:
            return response.json()
        except ValueError as error:
            raise BackendError(f"GET {self.url(path)} answered no JSON document") from error

    def close(self) -> None:
        self._session.close()

    def _retryable(self, outcome: requests.Response | BackendError) -> bool:
        return isinstance(outcome, BackendError) and (
            outcome.status is None or outcome.status in self.retries.statuses
        )

    def _attempt(
        self, method: str, url: str, *, timeout: float, **kwargs: Any
    ) -> requests.Response | BackendError:
        """The answer to one attempt, or the BackendError it came to."""
        try:
            response = self._session.request(method, url, timeout=timeout, **kwargs)
        except requests.ReadTimeout as error:
            timed_out = BackendTimeout(
                f"{method} {url} got no answer within {timeout:g} s",
                reason=f"the backend at {self.base_url} did not answer within {timeout:g} s; "
                "the request was sent and may still complete there",
            )
            timed_out.__cause__ = error
            return timed_out
        except requests.RequestException as error:
            unreachable = BackendError(
                f"{method} {url} failed: {error}",
                reason=f"the backend at {self.base_url} cannot be reached ({type(error).__name__})",
            )
            unreachable.__cause__ = error
            return unreachable
        if response.status_code >= 400:
            return _error_from(response, method, url)
        return response


def _error_from(response: requests.Response, method: str, url: str) -> BackendError:
    """A BackendError from the backend's uniform error body, or else a quote of the body."""
    message, extra = f"{method} {url} answered {response.status_code}", dict[str, Any]()
    reason = f"the backend answered {response.status_code} {response.reason}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        reason = body["message"]
        message = f"{message}: {reason}"
        if isinstance(body.get("extra"), dict):
            extra = body["extra"]
    elif response.text.strip():
        message = f"{message}: {response.text.strip()[:_QUOTED_TEXT_CHARS]}"
    return BackendError(message, status=response.status_code, extra=extra, reason=reason)
