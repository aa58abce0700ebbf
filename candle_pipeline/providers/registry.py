"""Builds the provider a source name stands for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from candle_pipeline.providers.base import MarketDataProvider
from candle_pipeline.providers.csv_files import CsvProvider
from candle_pipeline.providers.rate_limit import RateLimiter
from candle_pipeline.providers.replay import RecordedExchanges
from candle_pipeline.providers.resilience import BreakerSettings, Resilience, RetryPolicy
from candle_pipeline.providers.synthetic import SyntheticProvider
from candle_pipeline.providers.yahoo import YahooProvider
from candle_pipeline.settings import (
    DEFAULT_EXCHANGE,
    DEFAULT_SYNTHETIC_INTERVAL,
    DEFAULT_YAHOO_INTERVAL,
    KNOWN_SOURCES,
)

YAHOO_ENDPOINT = "https://query2.finance.yahoo.com"


@dataclass(frozen=True)
class ProviderOptions:
    """How a provider is built: how one that calls a service over HTTP calls it, and what the
    synthetic source makes up."""

    retry: RetryPolicy
    breaker: BreakerSettings
    timeout_seconds: float
    yahoo_interval: str = DEFAULT_YAHOO_INTERVAL
    limiter: RateLimiter | None = None
    yahoo_replay_dir: str | None = None
    yahoo_base_url: str | None = None
    synthetic_interval: str = DEFAULT_SYNTHETIC_INTERVAL
    default_mic: str = DEFAULT_EXCHANGE


def needs_rate_limit(source: str, options: ProviderOptions) -> bool:
    """Whether `source` sends requests over the network (a replay does not)."""
    return source == "yahoo" and options.yahoo_replay_dir is None


def build_provider(source: str, csv_dir: str, options: ProviderOptions) -> MarketDataProvider:
    if source == "csv":
        return CsvProvider(root=Path(csv_dir))
    if source == "yahoo":
        replay = None
        endpoint = options.yahoo_base_url or YAHOO_ENDPOINT
        if options.yahoo_replay_dir is not None:
            replay = RecordedExchanges(Path(options.yahoo_replay_dir))
            endpoint = f"replay:{replay.folder}"
        return YahooProvider(
            interval=options.yahoo_interval,
            resilience=Resilience("yahoo", endpoint, options.retry, options.breaker),
            timeout_seconds=options.timeout_seconds,
            limiter=options.limiter if replay is None else None,
            base_url=options.yahoo_base_url,
            replay=replay,
        )
    if source == "synthetic":
        return SyntheticProvider(interval=options.synthetic_interval, mic=options.default_mic)
    raise ValueError(f"unknown market-data source {source!r}; known: {', '.join(KNOWN_SOURCES)}")
