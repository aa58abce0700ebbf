"""A real local HTTP server standing in for Yahoo: it serves the recorded payloads, injects the
faults a test queues, and measures what the client did (arrivals, requests in flight)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import dagster as dg

from candle_pipeline.definitions import build_assets
from candle_pipeline.jobs import JOBS
from candle_pipeline.providers.replay import CHART_PATH, RecordedExchanges, ReplayMissError
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import Settings, get_settings
from candle_pipeline_tests.providers.local_service import LocalService
from candle_pipeline_tests.providers.yahoo_fixtures import FAST_RETRY, YAHOO_FIXTURES

NOT_FOUND_BODY = {
    "chart": {
        "result": None,
        "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
    }
}


@dataclass(frozen=True)
class Fault:
    """What the server does instead of answering a chart request normally."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay_seconds: float = 0.0
    truncate: bool = False


@dataclass(frozen=True)
class Arrival:
    path: str
    symbol: str | None
    is_chart: bool
    arrived: float
    finished: float


class FakeYahoo(LocalService[Fault]):
    """`with FakeYahoo() as yahoo:` serves on 127.0.0.1; point `yahoo_base_url` at `base_url`."""

    def __init__(self, folder: Path = YAHOO_FIXTURES, latency_seconds: float = 0.0) -> None:
        self.recordings = RecordedExchanges(folder)
        self.latency_seconds = latency_seconds
        self.arrivals: list[Arrival] = []
        self.max_in_flight = 0
        self._in_flight = 0
        super().__init__()

    def fail(self, symbol: str, *faults: Fault) -> None:
        """Answer the next chart requests of `symbol` (with a period) with `faults`, in order."""
        self._queue_faults(symbol, faults)

    def chart_calls(self, symbol: str) -> list[Arrival]:
        """Requests for `symbol`'s bars (time-zone lookups excluded)."""
        return [a for a in self.arrivals if a.symbol == symbol and a.is_chart]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        symbol = (
            unquote(parts.path[len(CHART_PATH) :]) if parts.path.startswith(CHART_PATH) else None
        )
        is_chart = symbol is not None and "period1" in query
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fault = self._faults[symbol].popleft() if is_chart and self._faults[symbol] else None
        try:
            status, headers, body = self._answer(handler.path, fault)
            time.sleep(self.latency_seconds + (fault.delay_seconds if fault else 0.0))
        finally:
            # Recorded before the answer leaves: a client never sees an answer whose arrival the
            # test cannot see yet.
            with self._lock:
                self._in_flight -= 1
                self.arrivals.append(
                    Arrival(parts.path, symbol, is_chart, arrived, time.monotonic())
                )
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, path: str, fault: Fault | None) -> tuple[int, dict[str, str], bytes]:
        if fault is not None and fault.body is not None:
            return fault.status, {"Content-Type": "application/json", **fault.headers}, fault.body
        if fault is not None and fault.status != 200:
            return fault.status, fault.headers, b"<html>error</html>"
        if urlsplit(path).path == "/":
            return 200, {"Content-Type": "text/html"}, b""
        try:
            answer = self.recordings.answer(f"https://query2.finance.yahoo.com{path}", None)
        except ReplayMissError:
            return 404, {"Content-Type": "application/json"}, json.dumps(NOT_FOUND_BODY).encode()
        body = answer.body[: len(answer.body) // 2] if fault and fault.truncate else answer.body
        return answer.status, answer.headers, body


def yahoo_resources(warehouse_url: str, base_url: str, **config: object) -> dict[str, object]:
    """The real resources, with market data from Yahoo at `base_url` and fast retries."""
    warehouse = WarehouseResource(database_url=warehouse_url)
    settings = {
        "yahoo_base_url": base_url,
        "retry": FAST_RETRY,
        "request_timeout_seconds": 2.0,
        **config,
    }
    return {
        **build_resources(Settings.from_env({}), warehouse_url),
        "market_data": MarketDataResource(
            source="yahoo", csv_dir="", warehouse=warehouse, **settings
        ),
    }


def yahoo_definitions(warehouse_url: str, base_url: str, **config: object) -> dg.Definitions:
    """The real assets and jobs on `yahoo_resources`."""
    return dg.Definitions(
        assets=build_assets(get_settings()),
        jobs=JOBS,
        resources=yahoo_resources(warehouse_url, base_url, **config),
    )
