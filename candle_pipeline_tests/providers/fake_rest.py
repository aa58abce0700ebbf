"""A real local HTTP server standing in for a REST market-data service (Polygon, an exchange
reached through ccxt): it answers from recorded answers filed by path (the replay's own
`RecordedPaths`), or from a test's `generate` function, checks the API key a test sets, injects
the faults a test queues, and records every request it received."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from candle_pipeline.providers.http import Answer
from candle_pipeline.providers.replay import RecordedPaths, ReplayMissError
from candle_pipeline_tests.providers.local_service import LocalService

JSON = {"Content-Type": "application/json"}
# Polygon's answer to a request without a valid key.
UNKNOWN_KEY = {"status": "ERROR", "request_id": "fake", "error": "Unknown API Key"}


@dataclass(frozen=True)
class Fault:
    """What the server answers instead, once."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"status": "ERROR", "error": "injected"}'


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    authorization: str | None


Generator = Callable[[str, dict[str, str]], Answer | None]


class FakeRest(LocalService[Fault]):
    """`with FakeRest(folder) as service:` serves on 127.0.0.1; point the provider's base URL at
    `base_url`."""

    def __init__(
        self,
        folder: Path | None = None,
        *,
        key: str | None = None,
        generate: Generator | None = None,
    ) -> None:
        self.recordings = RecordedPaths(folder, "fake") if folder is not None else None
        self.key = key
        self.generate = generate
        self.requests: list[Request] = []
        super().__init__()

    def fail(self, path_prefix: str, *faults: Fault) -> None:
        """Answer the next requests whose path starts with `path_prefix` with `faults`."""
        self._queue_faults(path_prefix, faults)

    def paths(self, prefix: str = "/") -> list[str]:
        return [request.path for request in self.requests if request.path.startswith(prefix)]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        authorization = handler.headers.get("Authorization")
        with self._lock:
            self.requests.append(Request(parts.path, query, authorization))
            prefix = next(
                (p for p in self._faults if parts.path.startswith(p) and self._faults[p]), None
            )
            fault = self._faults[prefix].popleft() if prefix is not None else None
        status, headers, body = self._answer(handler.path, parts.path, query, authorization, fault)
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(
        self,
        target: str,
        path: str,
        query: dict[str, str],
        authorization: str | None,
        fault: Fault | None,
    ) -> tuple[int, dict[str, str], bytes]:
        if fault is not None:
            return fault.status, {**JSON, **fault.headers}, fault.body
        if self.key is not None and authorization != f"Bearer {self.key}":
            return 401, JSON, json.dumps(UNKNOWN_KEY).encode()
        answer = self.generate(path, query) if self.generate is not None else None
        if answer is None and self.recordings is not None:
            try:
                answer = self.recordings.answer(f"http://fake{target}")
            except ReplayMissError as error:
                return 404, JSON, json.dumps({"status": "NOT_FOUND", "error": str(error)}).encode()
        if answer is None:
            return 404, JSON, b'{"status": "NOT_FOUND"}'
        return answer.status, answer.headers, answer.body
