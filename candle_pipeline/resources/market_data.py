"""The market-data client resource: the only place that talks to a market-data source.

It builds the configured provider with the client's one retry policy, circuit breaker and rate
limiter (a token bucket per provider whose state lives in the warehouse, so it holds across
processes), and stamps what the provider returns with source and fetch time. A ticker whose
fetch fails is one failure among the run's tickers, never the end of the run.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import PrivateAttr

from candle_pipeline.domain.bars import BarsError, raw_quotes, stamp_fetches
from candle_pipeline.domain.corporate_actions import STORED_ACTION_COLUMNS, empty_actions
from candle_pipeline.domain.intraday import new_bars
from candle_pipeline.domain.ticker_days import FAILED, RETRY_LATER, FailedRetries, Failure
from candle_pipeline.providers.base import (
    FetchResult,
    MarketDataProvider,
    ProviderError,
    RetryLaterError,
)
from candle_pipeline.providers.rate_limit import limiter_for
from candle_pipeline.providers.registry import ProviderOptions, build_provider, needs_rate_limit
from candle_pipeline.providers.resilience import BreakerSettings, RetryPolicy
from candle_pipeline.resources.warehouse import WarehouseResource, ensure_tables
from candle_pipeline.settings import (
    DEFAULT_BACKOFF_INITIAL_SECONDS,
    DEFAULT_BACKOFF_JITTER_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_BREAKER_FAILURES,
    DEFAULT_BREAKER_RESET_SECONDS,
    DEFAULT_EXCHANGE,
    DEFAULT_FAILED_RETRY_ATTEMPTS,
    DEFAULT_FAILED_RETRY_FIRST_WAIT_SECONDS,
    DEFAULT_MAX_RETRY_AFTER_SECONDS,
    DEFAULT_REQUEST_BURST,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_SYNTHETIC_INTERVAL,
    DEFAULT_YAHOO_INTERVAL,
)


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What one run fetched: each ticker's result (bars unstamped, with what its requests cost),
    all bars and corporate actions stamped as the tables store them, and why each ticker that
    delivered nothing failed."""

    results: dict[str, FetchResult]
    bars: pd.DataFrame
    actions: pd.DataFrame
    failures: dict[str, Failure]


class MarketDataResource(dg.ConfigurableResource):
    """Fetches bars from the configured source and stamps them with source and fetch time."""

    source: str
    csv_dir: str
    warehouse: WarehouseResource
    yahoo_interval: str = DEFAULT_YAHOO_INTERVAL
    yahoo_replay_dir: str | None = None
    yahoo_base_url: str | None = None
    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE
    request_burst: int = DEFAULT_REQUEST_BURST
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS
    backoff_jitter_seconds: float = DEFAULT_BACKOFF_JITTER_SECONDS
    max_retry_after_seconds: float = DEFAULT_MAX_RETRY_AFTER_SECONDS
    breaker_failures: int = DEFAULT_BREAKER_FAILURES
    breaker_reset_seconds: float = DEFAULT_BREAKER_RESET_SECONDS
    synthetic_interval: str = DEFAULT_SYNTHETIC_INTERVAL
    default_exchange: str = DEFAULT_EXCHANGE
    failed_retry_first_wait_seconds: float = DEFAULT_FAILED_RETRY_FIRST_WAIT_SECONDS
    failed_retry_attempts: int = DEFAULT_FAILED_RETRY_ATTEMPTS

    _provider: MarketDataProvider | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._provider = self._build()

    @property
    def provider(self) -> MarketDataProvider:
        if self._provider is None:
            self._provider = self._build()
        return self._provider

    def _build(self) -> MarketDataProvider:
        options = ProviderOptions(
            retry=RetryPolicy(
                attempts=self.retry_attempts,
                backoff_initial_seconds=self.backoff_initial_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
                backoff_jitter_seconds=self.backoff_jitter_seconds,
                max_retry_after_seconds=self.max_retry_after_seconds,
            ),
            breaker=BreakerSettings(self.breaker_failures, self.breaker_reset_seconds),
            timeout_seconds=self.request_timeout_seconds,
            yahoo_interval=self.yahoo_interval,
            yahoo_replay_dir=self.yahoo_replay_dir,
            yahoo_base_url=self.yahoo_base_url,
            synthetic_interval=self.synthetic_interval,
            default_mic=self.default_exchange,
        )
        if needs_rate_limit(self.source, options):
            ensure_tables(self.warehouse.database_url)
            limiter = limiter_for(
                self.warehouse.engine, self.source, self.requests_per_minute, self.request_burst
            )
            options = dataclasses.replace(options, limiter=limiter)
        return build_provider(self.source, self.csv_dir, options)

    def failed_retries(self) -> FailedRetries:
        """When the retry sensor asks again for a ticker-day the provider refused."""
        return FailedRetries(
            timedelta(seconds=self.failed_retry_first_wait_seconds), self.failed_retry_attempts
        )

    def fetch_all(
        self,
        open_days: Mapping[str, Sequence[date]],
        *,
        as_of: datetime | None = None,
        resume_after: Mapping[str, datetime] | None = None,
    ) -> Fetched:
        """Raw bars and corporate actions of each ticker on its days, in as few requests as the
        provider allows, stamped with source and each ticker's fetch time.

        Only bars that ended by `as_of` (default: now) are kept, and of a ticker in
        `resume_after` only those after its latest stored bar (a provider that cannot ask for
        less returns whole days).

        A ticker the provider fails on (after the retry policy) is recorded with the reason and
        the others go on: `retry_later` when the provider asked us to wait or its circuit
        breaker is open, `failed` for a refusal or an answer that cannot be stored.
        """
        as_of = as_of or datetime.now(UTC)
        results: dict[str, FetchResult] = {}
        fetched_at: list[datetime] = []
        failures: dict[str, Failure] = {}
        for ticker, days in open_days.items():
            try:
                result = self.provider.fetch_bars(
                    ticker, days, after=(resume_after or {}).get(ticker), as_of=as_of
                )
            except RetryLaterError as error:
                wait = timedelta(seconds=error.retry_after_seconds)
                failures[ticker] = Failure(RETRY_LATER, str(error), datetime.now(UTC) + wait)
                continue
            except (ProviderError, BarsError) as error:
                failures[ticker] = Failure(FAILED, str(error))
                continue
            results[ticker] = dataclasses.replace(
                result, bars=new_bars(result.bars, resume_after or {}, as_of)
            )
            fetched_at.append(datetime.now(UTC))
        source = self.provider.name
        fetched = list(results.values())
        actions = (
            stamp_fetches([r.actions for r in fetched], fetched_at, source)
            if fetched
            else empty_actions(STORED_ACTION_COLUMNS)
        )
        return Fetched(
            results=results,
            bars=raw_quotes([r.bars for r in fetched], fetched_at, source),
            actions=actions,
            failures=failures,
        )
