"""The market-data client resource: the only place that talks to a market-data source.

It builds each provider a run needs with the client's one retry policy, circuit breaker and rate
limiter (a token bucket per provider whose state lives in the warehouse, so it holds across
processes), routes each ticker to its provider (`domain.routing`), fetches each provider's
tickers in one group (the fewest requests that provider allows), asks the fallback sources in
order for the tickers a provider failed on, and stamps what each returns with its source and
fetch time. A ticker whose fetch fails everywhere is one failure among the run's tickers, never
the end of the run; a provider that cannot be used as configured (no key, a refused key) is.
Secrets never leave it: every message it passes on has the API keys masked.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from candle_pipeline.domain.bars import raw_quotes, stamp_fetches
from candle_pipeline.domain.corporate_actions import (
    FETCHED_ACTION_COLUMNS,
    empty_actions,
    with_details,
)
from candle_pipeline.domain.intraday import new_bars
from candle_pipeline.domain.routing import CRYPTO_SOURCE, reference_chain, route, source_chain
from candle_pipeline.domain.ticker_days import FAILED, RETRY_LATER, FailedRetries, Failure
from candle_pipeline.providers.base import (
    CallStats,
    FetchResult,
    MarketDataProvider,
    ProviderSetupError,
    RetryLaterError,
    fetch_group,
)
from candle_pipeline.providers.crypto import exchange_requests_per_minute
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.providers.rate_limit import limiter_for
from candle_pipeline.providers.registry import ProviderOptions, build_provider, needs_rate_limit
from candle_pipeline.providers.resilience import BreakerSettings, RetryPolicy
from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables

MASK = "***"


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What one run fetched: each ticker's result (bars unstamped), all bars and corporate
    actions stamped as the tables store them (each row with the source that served it), why
    each ticker that delivered nothing failed, why its own source did not serve it for those a
    fallback served, and what the requests cost, in all and per source. `chains` are the sources
    each ticker could be asked in order, `served_by` the one that served it and `failed_on` those
    that failed on it (all by source name, as CANDLE_SOURCE spells them)."""

    results: dict[str, FetchResult]
    bars: pd.DataFrame
    actions: pd.DataFrame
    failures: dict[str, Failure]
    fallbacks: dict[str, str] = dataclasses.field(default_factory=dict)
    cost: CallStats = dataclasses.field(default_factory=CallStats)
    requests_by_source: dict[str, int] = dataclasses.field(default_factory=dict)
    chains: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    served_by: dict[str, str] = dataclasses.field(default_factory=dict)
    failed_on: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def crosscheck_chains(self) -> dict[str, list[str]]:
        """Per ticker a fallback served, the sources to cross-check it against, in order."""
        return {
            ticker: reference_chain(
                self.chains[ticker], [self.served_by[ticker], *self.failed_on.get(ticker, ())]
            )
            for ticker in self.fallbacks
        }

    @property
    def split_adjusted_as_of(self) -> dict[str, date]:
        """The tickers whose bars the provider divided by later splits, and as of which day."""
        return {
            ticker: result.split_adjusted_as_of
            for ticker, result in self.results.items()
            if result.split_adjusted_as_of is not None
        }


class MarketDataResource(dg.ConfigurableResource):
    """Fetches bars from each ticker's source (with fallbacks) and stamps them with source and
    fetch time."""

    # Where bars come from (CANDLE_SOURCE): csv, yahoo, synthetic, polygon or ccxt.
    source: str = "csv"
    # The Lean folder of the csv source (CANDLE_CSV_DIR): the bundled sample by default.
    csv_dir: str = str(SAMPLE_DATA_DIR)
    warehouse: WarehouseResource
    # Sources asked in order for the tickers a ticker's own source failed on.
    fallback_sources: list[str] = []
    yahoo_interval: str = "1d"
    yahoo_replay_dir: str | None = None
    yahoo_base_url: str | None = None
    # A secret: only ever `dg.EnvVar("CANDLE_POLYGON_API_KEY")`, never a value in config.
    polygon_api_key: str | None = None
    polygon_interval: str = "1d"
    polygon_replay_dir: str | None = None
    polygon_base_url: str | None = None
    # Polygon's free tier allows 5 requests a minute.
    polygon_requests_per_minute: float = 5.0
    polygon_request_burst: int = 1
    ccxt_exchange: str = "binance"
    ccxt_interval: str = "1d"
    ccxt_replay_dir: str | None = None
    ccxt_base_url: str | None = None
    # None: the exchange's own rate as ccxt publishes it; a value can only lower it.
    ccxt_requests_per_minute: float | None = None
    synthetic_interval: str = "1m"
    # Yahoo publishes no quota; bursts of more than ~2,000 requests an hour get 429s. One
    # request a second sustained, with a burst of a few, stays well below.
    requests_per_minute: float = 60.0
    request_burst: int = 5
    # Seconds one HTTP request may take before it counts as a timeout (and is retried).
    request_timeout_seconds: float = 20.0
    # The one retry policy of every provider request, and its circuit breaker.
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerSettings = BreakerSettings()
    # A ticker-day the provider refused is asked again by the retry sensor after an hour, then
    # after 2, 4 and 8 hours: five attempts in all, about a day, before it waits for a person
    # or a run.
    failed_retry_first_wait_seconds: float = 3600.0
    failed_retry_attempts: int = 5

    _providers: dict[str, MarketDataProvider] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """The configured source is built at start-up, so a missing key stops the run before
        anything is fetched."""
        self.provider_for(self.source)

    @property
    def provider(self) -> MarketDataProvider:
        """The provider of CANDLE_SOURCE."""
        return self.provider_for(self.source)

    def provider_for(self, source: str) -> MarketDataProvider:
        """The provider of `source`, built on first use; a setup error has its secrets masked."""
        if source not in self._providers:
            try:
                self._providers[source] = self._build(source)
            except ProviderSetupError as error:
                raise ProviderSetupError(self.masked(str(error))) from None
        return self._providers[source]

    def masked(self, text: str) -> str:
        """`text` with every secret of the client replaced by a mask."""
        if self.polygon_api_key:
            text = text.replace(self.polygon_api_key, MASK)
        return text

    def provider_options(self) -> ProviderOptions:
        """How this client's providers are built (without a rate limiter)."""
        return ProviderOptions(
            retry=self.retry,
            breaker=self.breaker,
            timeout_seconds=self.request_timeout_seconds,
            yahoo_interval=self.yahoo_interval,
            yahoo_replay_dir=self.yahoo_replay_dir,
            yahoo_base_url=self.yahoo_base_url,
            synthetic_interval=self.synthetic_interval,
            default_mic=self.warehouse.default_exchange,
            polygon_api_key=self.polygon_api_key,
            polygon_interval=self.polygon_interval,
            polygon_replay_dir=self.polygon_replay_dir,
            polygon_base_url=self.polygon_base_url,
            ccxt_exchange=self.ccxt_exchange,
            ccxt_interval=self.ccxt_interval,
            ccxt_replay_dir=self.ccxt_replay_dir,
            ccxt_base_url=self.ccxt_base_url,
        )

    def _build(self, source: str) -> MarketDataProvider:
        options = self.provider_options()
        if needs_rate_limit(source, options):
            ensure_tables(self.warehouse.database_url)
            per_minute, burst = self._rate(source)
            limiter = limiter_for(self.warehouse.engine, source, per_minute, burst)
            options = dataclasses.replace(options, limiter=limiter)
        return build_provider(source, self.csv_dir, options)

    def _rate(self, source: str) -> tuple[float, int]:
        """The token bucket of `source`: Polygon's free tier; an exchange's own ccxt rate (or
        lower, when configured); the configured rate for Yahoo."""
        if source == "polygon":
            return self.polygon_requests_per_minute, self.polygon_request_burst
        if source == CRYPTO_SOURCE:
            own = exchange_requests_per_minute(self.ccxt_exchange)
            configured = self.ccxt_requests_per_minute or own
            return min(own, configured), self.request_burst
        return self.requests_per_minute, self.request_burst

    def failed_retries(self) -> FailedRetries:
        """When the retry sensor asks again for a ticker-day the provider refused."""
        return FailedRetries(
            timedelta(seconds=self.failed_retry_first_wait_seconds), self.failed_retry_attempts
        )

    def routes(self, providers: Mapping[str, str | None]) -> dict[str, str]:
        """Each ticker's source, from its watch-list `provider` (None: the routing rule)."""
        return route(providers, self.source, CRYPTO_SOURCE)

    def fetch_all(
        self,
        open_days: Mapping[str, Sequence[date]],
        providers: Mapping[str, str | None] | None = None,
        *,
        as_of: datetime | None = None,
        resume_after: Mapping[str, datetime] | None = None,
    ) -> Fetched:
        """Raw bars and corporate actions of each ticker on its days, each provider's tickers in
        one group fetch, stamped with the serving source and each fetch's time.

        A ticker its source fails on (after the retry policy, or with its breaker open) is
        asked from the next of `fallback_sources`, for all its days, so a ticker-day never mixes
        two sources. A ticker failing everywhere is recorded with every source's reason:
        `retry_later` when one of them asked us to wait, else `failed`.

        Only bars that ended by `as_of` (default: now) are kept, and of a ticker in
        `resume_after` only those after its latest stored bar (a provider that cannot ask for
        less returns whole days).
        """
        routes = self.routes(providers or dict.fromkeys(open_days))
        return self.fetch_from(
            open_days,
            {ticker: source_chain(routes[ticker], self.fallback_sources) for ticker in open_days},
            as_of=as_of,
            resume_after=resume_after,
        )

    def fetch_from(
        self,
        open_days: Mapping[str, Sequence[date]],
        chains: Mapping[str, Sequence[str]],
        *,
        as_of: datetime | None = None,
        resume_after: Mapping[str, datetime] | None = None,
    ) -> Fetched:
        """As `fetch_all`, each ticker asked the sources of its chain in order (a ticker with an
        empty chain is not asked)."""
        as_of = as_of or datetime.now(UTC)
        open_days = {ticker: days for ticker, days in open_days.items() if chains[ticker]}
        results: dict[str, FetchResult] = {}
        sources: dict[str, str] = {}
        served_by: dict[str, str] = {}
        failed_on: dict[str, list[str]] = {}
        fetched_at: dict[str, datetime] = {}
        errors: dict[str, list[tuple[str, Exception]]] = {ticker: [] for ticker in open_days}
        cost = CallStats()
        requests_by_source: dict[str, int] = {}
        pending = dict(open_days)
        attempt = 0
        while pending:
            groups: dict[str, dict[str, Sequence[date]]] = {}
            for ticker, days in pending.items():
                groups.setdefault(chains[ticker][attempt], {})[ticker] = days
            pending = {}
            for source, group in groups.items():
                provider = self.provider_for(source)
                try:
                    answer = fetch_group(provider, group, resume_after=resume_after, as_of=as_of)
                except ProviderSetupError as error:
                    raise ProviderSetupError(self.masked(str(error))) from None
                done = datetime.now(UTC)
                cost.add(answer.cost)
                requests_by_source[provider.name] = (
                    requests_by_source.get(provider.name, 0) + answer.cost.requests
                )
                for ticker, result in answer.results.items():
                    results[ticker], sources[ticker], fetched_at[ticker] = (
                        dataclasses.replace(
                            result, bars=new_bars(result.bars, resume_after or {}, as_of)
                        ),
                        provider.name,
                        done,
                    )
                    served_by[ticker] = source
                for ticker, error in answer.errors.items():
                    errors[ticker].append((provider.name, error))
                    failed_on.setdefault(ticker, []).append(source)
                    if attempt + 1 < len(chains[ticker]):
                        pending[ticker] = group[ticker]
            attempt += 1
        failures = {
            ticker: self._failure(tried)
            for ticker, tried in errors.items()
            if ticker not in results
        }
        fallbacks = {
            ticker: self.masked("; ".join(f"{name}: {error}" for name, error in tried))
            for ticker, tried in errors.items()
            if ticker in results and tried
        }
        served = list(results)
        stamps = [fetched_at[ticker] for ticker in served]
        names = [sources[ticker] for ticker in served]
        actions = (
            stamp_fetches(
                [with_details(results[ticker].actions) for ticker in served], stamps, names
            )
            .loc[:, list(FETCHED_ACTION_COLUMNS)]
            .drop_duplicates(subset=["ticker", "ex_date"], keep="last")
            if served
            else empty_actions(FETCHED_ACTION_COLUMNS)
        )
        return Fetched(
            results=results,
            bars=raw_quotes([results[ticker].bars for ticker in served], stamps, names),
            actions=actions,
            failures=failures,
            fallbacks=fallbacks,
            cost=cost,
            requests_by_source=requests_by_source,
            chains={ticker: list(chain) for ticker, chain in chains.items()},
            served_by=served_by,
            failed_on=failed_on,
        )

    def _failure(self, tried: Sequence[tuple[str, Exception]]) -> Failure:
        """A ticker every source failed on: `retry_later` (at the earliest moment one of them
        named) when one asked us to wait, else `failed`; every source's reason, masked."""
        message = self.masked("; ".join(f"{name}: {error}" for name, error in tried))
        waits = [e.retry_after_seconds for _, e in tried if isinstance(e, RetryLaterError)]
        if waits:
            return Failure(RETRY_LATER, message, datetime.now(UTC) + timedelta(seconds=min(waits)))
        return Failure(FAILED, message)
