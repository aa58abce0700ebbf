"""Recorded Yahoo payloads (node-yahoo-finance2 test fixtures, MIT) and replaying providers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from candle_pipeline.providers.registry import build_provider
from candle_pipeline.providers.resilience import BreakerSettings, RetryPolicy
from candle_pipeline.providers.yahoo import YahooProvider
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource

YAHOO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yahoo-http"
# Short waits so that tests exercising retries stay fast; set through the client's own options.
FAST_RETRY = RetryPolicy(
    attempts=4,
    backoff_initial_seconds=0.05,
    backoff_max_seconds=0.2,
    backoff_jitter_seconds=0.05,
    max_retry_after_seconds=5.0,
)


def fast_retry(max_retry_after_seconds: float) -> RetryPolicy:
    """FAST_RETRY, waiting within a run for a Retry-After of at most this many seconds."""
    return FAST_RETRY.model_copy(update={"max_retry_after_seconds": max_retry_after_seconds})


def yahoo_client(**config: object) -> MarketDataResource:
    """The market-data client of Yahoo with fast retries, on no warehouse (no rate limiter)."""
    return MarketDataResource(
        source="yahoo",
        warehouse=WarehouseResource(database_url="postgresql://unused/x"),
        retry=FAST_RETRY,
        **config,
    )


def recorded(name: str) -> dict:
    """`chart.result[0]` of a recorded exchange."""
    body = json.loads((YAHOO_FIXTURES / name).read_text())["response"]["bodyJson"]
    return body["chart"]["result"][0]


def recorded_period_end(name: str) -> int:
    """`period2` of the recorded request (epoch seconds, exclusive)."""
    url = json.loads((YAHOO_FIXTURES / name).read_text())["request"]["url"]
    return int(dict(parse_qsl(urlsplit(url).query))["period2"])


def recorded_bars(name: str) -> pd.DataFrame:
    """The recorded bars by exchange-local date: open, high, low, close, volume, adjclose."""
    result = recorded(name)
    quote = result["indicators"]["quote"][0]
    zone = result["meta"]["exchangeTimezoneName"]
    stamps = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert(zone)
    frame = pd.DataFrame(
        {
            "open": quote["open"],
            "high": quote["high"],
            "low": quote["low"],
            "close": quote["close"],
            "volume": quote["volume"],
            "adj_close": result["indicators"]["adjclose"][0]["adjclose"],
        },
        index=pd.DatetimeIndex(stamps.tz_localize(None).normalize(), name="trade_date"),
    )
    return frame.astype("float64")


def replaying_provider(
    interval: str = "1d",
    clock: Callable[[], datetime] | None = None,
    folder: Path = YAHOO_FIXTURES,
) -> YahooProvider:
    options = yahoo_client(
        breaker=BreakerSettings(failures=5, reset_seconds=60),
        request_timeout_seconds=5,
        yahoo_interval=interval,
        yahoo_replay_dir=str(folder),
    ).provider_options()
    provider = build_provider("yahoo", "", options)
    assert isinstance(provider, YahooProvider)
    if clock is not None:
        provider.clock = clock
    return provider


def at(day: date, hour: int = 12) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
