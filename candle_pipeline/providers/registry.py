"""Builds the provider a source name stands for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from candle_pipeline.domain.routing import KNOWN_SOURCES
from candle_pipeline.providers.base import MarketDataProvider, ProviderSetupError
from candle_pipeline.providers.crypto import CcxtProvider, exchange_client
from candle_pipeline.providers.csv_files import CsvProvider
from candle_pipeline.providers.http import ProviderSession
from candle_pipeline.providers.polygon import POLYGON_ENDPOINT, PolygonProvider
from candle_pipeline.providers.rate_limit import RateLimiter
from candle_pipeline.providers.replay import RecordedExchanges, RecordedPaths
from candle_pipeline.providers.resilience import BreakerSettings, Resilience, RetryPolicy
from candle_pipeline.providers.synthetic import SyntheticProvider
from candle_pipeline.providers.yahoo import YahooProvider

YAHOO_ENDPOINT = "https://query2.finance.yahoo.com"
# Sources that answer over HTTP and share the client's rate limiter, retries and breaker.
NETWORK_SOURCES = ("yahoo", "polygon", "ccxt")


@dataclass(frozen=True)
class ProviderOptions:
    """How a provider is built: how one that calls a service over HTTP calls it, and what the
    synthetic source makes up. The market-data resource fills it from its fields (where every
    default is written); None: not configured (no replay folder, the service's own URL, no key)."""

    retry: RetryPolicy
    breaker: BreakerSettings
    timeout_seconds: float
    yahoo_interval: str
    synthetic_interval: str
    default_mic: str
    polygon_interval: str
    ccxt_exchange: str
    ccxt_interval: str
    limiter: RateLimiter | None = None
    yahoo_replay_dir: str | None = None
    yahoo_base_url: str | None = None
    polygon_api_key: str | None = None
    polygon_replay_dir: str | None = None
    polygon_base_url: str | None = None
    ccxt_replay_dir: str | None = None
    ccxt_base_url: str | None = None


def replay_dir(source: str, options: ProviderOptions) -> str | None:
    """The folder of recorded answers `source` replays, if any."""
    return {
        "yahoo": options.yahoo_replay_dir,
        "polygon": options.polygon_replay_dir,
        "ccxt": options.ccxt_replay_dir,
    }.get(source)


def needs_rate_limit(source: str, options: ProviderOptions) -> bool:
    """Whether `source` sends requests over the network (a replay does not)."""
    return source in NETWORK_SOURCES and replay_dir(source, options) is None


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
    if source == "polygon":
        return _polygon(options)
    if source == "ccxt":
        return _ccxt(options)
    if source == "synthetic":
        return SyntheticProvider(interval=options.synthetic_interval, mic=options.default_mic)
    raise ValueError(f"unknown market-data source {source!r}; known: {', '.join(KNOWN_SOURCES)}")


def _session(source: str, options: ProviderOptions, base_url: str | None) -> ProviderSession:
    folder = replay_dir(source, options)
    return ProviderSession(
        source,
        options.timeout_seconds,
        limiter=options.limiter if folder is None else None,
        base_url=base_url,
        replay=RecordedPaths(Path(folder), source) if folder is not None else None,
    )


def _endpoint(source: str, options: ProviderOptions, default: str) -> str:
    """What the circuit breaker is about: the replay folder, else the service's base URL."""
    folder = replay_dir(source, options)
    return f"replay:{folder}" if folder is not None else default


def _polygon(options: ProviderOptions) -> PolygonProvider:
    if options.polygon_replay_dir is None and not options.polygon_api_key:
        raise ProviderSetupError(
            "Polygon (Massive) needs an API key: set CANDLE_POLYGON_API_KEY "
            "(or CANDLE_POLYGON_REPLAY_DIR to replay recorded answers)"
        )
    endpoint = _endpoint("polygon", options, options.polygon_base_url or POLYGON_ENDPOINT)
    return PolygonProvider(
        api_key=options.polygon_api_key,
        interval=options.polygon_interval,
        session=_session("polygon", options, options.polygon_base_url),
        resilience=Resilience("polygon", endpoint, options.retry, options.breaker),
    )


def _ccxt(options: ProviderOptions) -> CcxtProvider:
    session = _session("ccxt", options, options.ccxt_base_url)
    client = exchange_client(options.ccxt_exchange, session, options.timeout_seconds)
    endpoint = _endpoint("ccxt", options, options.ccxt_base_url or options.ccxt_exchange)
    return CcxtProvider(
        client=client,
        interval=options.ccxt_interval,
        resilience=Resilience(f"ccxt:{client.id}", endpoint, options.retry, options.breaker),
    )
