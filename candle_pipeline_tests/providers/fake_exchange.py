"""Binance as ccxt sees it, for tests: its recorded market list and klines (`ccxt-http/`), and
minute klines made up in Binance's 12-field format for any other time (hand-made: a gentle wave
around the recorded 43519.34 open), served by `FakeRest`."""

from __future__ import annotations

import json
import math
from pathlib import Path

from candle_pipeline.providers.http import Answer
from candle_pipeline_tests.providers.fake_rest import JSON, FakeRest

BINANCE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ccxt-http" / "binance"
KLINES_PATH = "/api/v3/klines"
MINUTE_MS = 60_000
# Binance's interval names the made-up klines come in, as milliseconds.
INTERVAL_MS = {"1m": MINUTE_MS, "1h": 60 * MINUTE_MS}
FIRST_OPEN = 43519.34
WAVE_MINUTES = 240
WAVE_AMPLITUDE = 50.0
DEFAULT_LIMIT = 500


def made_up_kline(open_ms: int, width_ms: int = MINUTE_MS) -> list[object]:
    """One made-up kline: `[open time, o, h, l, c, volume, close time, quote volume, trades,
    taker base, taker quote, "0"]`, numbers as Binance's fixed-decimal strings."""
    minute = open_ms // MINUTE_MS
    minutes = width_ms // MINUTE_MS
    open_price = FIRST_OPEN + WAVE_AMPLITUDE * math.sin(minute * 2 * math.pi / WAVE_MINUTES)
    close = FIRST_OPEN + WAVE_AMPLITUDE * math.sin((minute + minutes) * 2 * math.pi / WAVE_MINUTES)
    high, low = max(open_price, close) + 1, min(open_price, close) - 1
    volume = 1 + minute % 7
    return [
        open_ms,
        *(f"{price:.8f}" for price in (open_price, high, low, close)),
        f"{volume:.8f}",
        open_ms + width_ms - 1,
        f"{volume * close:.8f}",
        10,
        f"{volume / 2:.8f}",
        f"{volume * close / 2:.8f}",
        "0",
    ]


def made_up_klines(path: str, query: dict[str, str]) -> Answer | None:
    """Klines from `startTime`, `limit` of them, like Binance (other requests: None)."""
    width = INTERVAL_MS.get(query.get("interval", ""))
    if path != KLINES_PATH or width is None or "startTime" not in query:
        return None
    start = -(-int(query["startTime"]) // width) * width
    limit = int(query.get("limit", DEFAULT_LIMIT))
    rows = [made_up_kline(start + n * width, width) for n in range(limit)]
    return Answer(200, dict(JSON), json.dumps(rows).encode())


def fake_binance() -> FakeRest:
    return FakeRest(BINANCE_FIXTURES, generate=made_up_klines)
