"""Recorded HTTP exchanges, answering a provider's requests instead of the network: Yahoo's chart
exchanges (`RecordedExchanges`) and REST answers filed by request path (`RecordedPaths`, for
Polygon and for the exchanges ccxt reaches). A request no recording answers is a
`ReplayMissError` naming what was asked and what is recorded; replaying never falls back to the
network.

Yahoo:

A recording is a JSON file `{"request": {"url", ...}, "response": {"status", "headers",
"bodyJson"}}` (the format of node-yahoo-finance2's test fixtures). A chart request
(`/v8/finance/chart/SYMBOL?interval=..&period1=..&period2=..`) is answered by a recording of the
same symbol and interval whose period covers the requested days; the days are compared in the
exchange's time zone (the recording's `meta.exchangeTimezoneName`) because yfinance asks from the
exchange's midnight while the recorders asked from UTC midnight. Among several, the one with the
most corporate-action events wins, then the shortest. A time-zone lookup (`range=1d`) is answered
by any recording of the symbol. The cookie and crumb requests yfinance makes first get empty
answers. Anything else is a `ReplayMissError` naming what was asked and what is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

from candle_pipeline.providers.base import ProviderError
from candle_pipeline.providers.http import Answer

CHART_PATH = "/v8/finance/chart/"
CRUMB_PATH = "/v1/test/getcrumb"
REPLAY_CRUMB = "replay-crumb"
EVENT_PARAM_NAMES = ("div", "split")


class ReplayMissError(ProviderError):
    """No recording answers the request; replaying never falls back to the network."""


@dataclass(frozen=True)
class Recording:
    path: Path
    symbol: str
    interval: str
    first_day: date
    end_day: date
    events: int
    timezone: str
    answer: Answer


class RecordedExchanges:
    """The recordings of one folder (not its subfolders), indexed by symbol."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._by_symbol: dict[str, list[Recording]] = {}
        for path in sorted(folder.glob("*.json")):
            recording = _load(path)
            if recording is not None:
                self._by_symbol.setdefault(recording.symbol, []).append(recording)
        if not self._by_symbol:
            raise ReplayMissError(f"{folder} holds no recorded Yahoo chart exchanges (*.json)")

    def answer(self, url: str, params: dict[str, object] | None) -> Answer:
        parts = urlsplit(url)
        query = {**dict(parse_qsl(parts.query)), **{k: str(v) for k, v in (params or {}).items()}}
        if parts.path.startswith(CHART_PATH):
            return self._chart(unquote(parts.path[len(CHART_PATH) :]), query)
        if parts.path == CRUMB_PATH:
            return Answer(200, {"content-type": "text/plain"}, REPLAY_CRUMB.encode())
        if parts.hostname and parts.hostname.startswith("fc."):
            return Answer(200, {"content-type": "text/html"}, b"")
        raise ReplayMissError(f"replaying {self.folder}: no recording answers {parts.path}")

    def holds(self, symbol: str, interval: str, first: date, last: date) -> bool:
        """True when a recording of `symbol` at `interval` covers `first` to `last` (local days)."""
        return any(
            r.interval == interval and r.first_day <= first and last < r.end_day
            for r in self._by_symbol.get(symbol, [])
        )

    def _chart(self, symbol: str, query: dict[str, str]) -> Answer:
        recordings = self._by_symbol.get(symbol, [])
        if not recordings:
            raise ReplayMissError(
                f"replaying {self.folder}: nothing is recorded for {symbol}; recorded symbols: "
                f"{', '.join(sorted(self._by_symbol))}"
            )
        if "period1" not in query:
            return recordings[0].answer
        interval = query.get("interval", "1d")
        matching = [r for r in recordings if r.interval == interval and _covers(r, query)]
        if not matching:
            recorded = "; ".join(
                f"{r.interval} {r.first_day}..{r.end_day} ({r.path.name})" for r in recordings
            )
            first, end = _asked_days(query, recordings[0].timezone)
            raise ReplayMissError(
                f"replaying {self.folder}: no recording of {symbol} at {interval} covers "
                f"{first}..{end} (end exclusive); recorded: {recorded}"
            )
        best = min(matching, key=lambda r: (-r.events, r.end_day - r.first_day, r.path.name))
        return best.answer


def _load(path: Path) -> Recording | None:
    """A chart recording, or None for files that are not one (e.g. a README)."""
    try:
        exchange = json.loads(path.read_text())
        url = urlsplit(exchange["request"]["url"])
        response = exchange["response"]
        body = response["bodyJson"]
    except (ValueError, KeyError, TypeError):
        return None
    if not url.path.startswith(CHART_PATH):
        return None
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    result = (body.get("chart") or {}).get("result") or [{}]
    timezone = (result[0] or {}).get("meta", {}).get("exchangeTimezoneName", "UTC")
    period = (int(query.get("period1", 0)), int(query.get("period2", 0)))
    headers = {
        name: value
        for name, value in response.get("headers", {}).items()
        if name.lower() in ("content-type", "retry-after")
    }
    return Recording(
        path=path,
        symbol=unquote(url.path[len(CHART_PATH) :]),
        interval=query.get("interval", "1d"),
        first_day=datetime.fromtimestamp(period[0], UTC).date(),
        end_day=datetime.fromtimestamp(period[1], UTC).date(),
        events=sum(name in query.get("events", "") for name in EVENT_PARAM_NAMES),
        timezone=timezone,
        answer=Answer(int(response["status"]), headers, json.dumps(body).encode()),
    )


def _asked_days(query: dict[str, str], timezone: str) -> tuple[date, date]:
    zone = ZoneInfo(timezone)
    return (
        datetime.fromtimestamp(int(query["period1"]), zone).date(),
        datetime.fromtimestamp(int(query["period2"]), zone).date(),
    )


def _covers(recording: Recording, query: dict[str, str]) -> bool:
    first, end = _asked_days(query, recording.timezone)
    return recording.first_day <= first and end <= recording.end_day


# In a recorded file's name the query parameters follow the path's last segment, each name and
# value joined and separated by this character (`2005-04-04_adjusted_true.json` answers
# `2005-04-04?adjusted=true`), as in the mocks of Polygon's official client.
PARAMETER_SEPARATOR = "_"
JSON_HEADERS = {"content-type": "application/json"}


class RecordedPaths:
    """REST answers filed by request path under `folder`: `<path>.json` answers a GET of
    `<path>` whatever its query; `<path>_<name>_<value>....json` only a GET whose query has those
    parameters with those values. The recording naming the most parameters wins."""

    def __init__(self, folder: Path, service: str) -> None:
        self.folder = folder
        self.service = service
        if not any(folder.rglob("*.json")):
            raise ReplayMissError(f"{folder} holds no recorded {service} answers (*.json)")

    def answer(self, url: str) -> Answer:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        directory, _, leaf = parts.path.strip("/").rpartition("/")
        candidates = sorted((self.folder / directory).glob(f"{leaf}*.json"))
        matching = [
            (len(parameters), path)
            for path in candidates
            if (parameters := _file_parameters(path.stem, leaf)) is not None
            and all(query.get(name) == value for name, value in parameters.items())
        ]
        if not matching:
            recorded = ", ".join(p.name for p in candidates) or "nothing for this path"
            asked = ", ".join(f"{name}={query[name]}" for name in sorted(query))
            raise ReplayMissError(
                f"replaying {self.folder}: no recorded {self.service} answer to {parts.path}"
                f"{f' ({asked})' if asked else ''}; recorded: {recorded}"
            )
        _, best = max(matching)
        return Answer(200, dict(JSON_HEADERS), best.read_bytes())


def _file_parameters(stem: str, leaf: str) -> dict[str, str] | None:
    """The query parameters a recording's file name asks for, or None when the file is about
    another path segment that merely starts like `leaf`."""
    if stem == leaf:
        return {}
    if not stem.startswith(leaf + PARAMETER_SEPARATOR):
        return None
    words = stem[len(leaf) + 1 :].split(PARAMETER_SEPARATOR)
    if len(words) % 2:
        return None
    return dict(zip(words[::2], words[1::2], strict=True))
