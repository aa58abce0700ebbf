"""The one small interface every market-data source implements, and the errors it raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from candle_pipeline.domain.bars import BarsError
from candle_pipeline.domain.corporate_actions import empty_actions


class ProviderError(RuntimeError):
    """A provider could not deliver bars for a request; the message names ticker and cause.

    Retrying the same request would fail the same way (an unknown symbol, an empty answer, a
    request outside the provider's windows).
    """


class TransientProviderError(ProviderError):
    """A failure that may pass: HTTP 429 or 5xx, a timeout, a cut connection, malformed JSON.

    `retry_after` holds the seconds the service asked us to wait (its Retry-After header).
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLaterError(ProviderError):
    """The provider asked us to wait, or kept failing transiently past the retry policy: worth
    asking again in `retry_after_seconds`, not before."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ProviderUnavailableError(RetryLaterError):
    """The circuit breaker is open: the provider failed repeatedly and is not being called until
    its reset time."""


class ProviderSetupError(ProviderError):
    """The provider cannot be used as configured (no API key, a key the service refuses): no
    ticker can be fetched from it until a person fixes the configuration, so the run fails with
    this message instead of recording every ticker-day as failed."""


@dataclass
class CallStats:
    """What the requests of one fetch cost: counted by the HTTP layer and by the retry loop."""

    requests: int = 0
    retries: int = 0
    throttled_seconds: float = 0.0
    backoff_seconds: float = 0.0

    def add(self, other: CallStats) -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.throttled_seconds += other.throttled_seconds
        self.backoff_seconds += other.backoff_seconds


@dataclass(frozen=True)
class FetchResult:
    """Bars in the canonical columns (domain.bars.BAR_COLUMNS, plus `adj_close` when the provider
    has it), the corporate actions seen on the requested days, and what the fetch cost.

    `dropped` counts rows the provider returned but that are not stored, by reason (all-NaN rows,
    repeated timestamps, bars of a session still in progress, days that were not asked for).
    `exchange_name` is the provider's own name of the ticker's exchange (Yahoo's `exchangeName`,
    e.g. `NMS`) when it reports one. `split_adjusted_as_of`: None when the bars are raw (as
    traded); else the day as of which the provider divided each bar by every later split (Yahoo:
    the day of the request), `actions` then holding every split up to that day.
    """

    bars: pd.DataFrame
    requests: int
    actions: pd.DataFrame = field(default_factory=empty_actions)
    dropped: Mapping[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled_seconds: float = 0.0
    backoff_seconds: float = 0.0
    exchange_name: str | None = None
    split_adjusted_as_of: date | None = None

    @property
    def cost(self) -> CallStats:
        return CallStats(self.requests, self.retries, self.throttled_seconds, self.backoff_seconds)

    @classmethod
    def measured(cls, bars: pd.DataFrame, stats: CallStats, **details: Any) -> FetchResult:
        """A result whose cost is what `stats` counted (requests, retries and waits)."""
        return cls(
            bars=bars,
            requests=stats.requests,
            retries=stats.retries,
            throttled_seconds=stats.throttled_seconds,
            backoff_seconds=stats.backoff_seconds,
            **details,
        )


class MarketDataProvider(Protocol):
    """Returns the bars of one ticker on the given trading days, as finely as it has them.

    A provider makes as few requests as its limits allow: one per request window covering as
    many of `days` as it may, never one per day when a range request would do.

    An intraday refresh passes `after` (the start of the latest bar stored: a provider that can
    asks only for what follows it) and `as_of` (the moment the refresh stands for: a bar that
    has not ended by then is still forming and not returned; default: now). The client drops
    what a provider returns at or before `after` and not ended by `as_of` in any case.
    """

    name: str

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult: ...


@dataclass(frozen=True)
class GroupFetch:
    """The fetch of several tickers from one provider: each ticker's result or the error that
    stopped it (a `ProviderError`, or a `BarsError` for an answer that cannot be stored), and
    what all the requests cost."""

    results: Mapping[str, FetchResult]
    errors: Mapping[str, Exception]
    cost: CallStats


@runtime_checkable
class GroupProvider(Protocol):
    """A provider with requests that answer several tickers at once (Polygon's grouped daily
    bars): it plans the group's requests itself, in the fewest it allows."""

    def fetch_group(self, open_days: Mapping[str, Sequence[date]]) -> GroupFetch: ...


def fetch_group(
    provider: MarketDataProvider,
    open_days: Mapping[str, Sequence[date]],
    *,
    resume_after: Mapping[str, datetime] | None = None,
    as_of: datetime | None = None,
) -> GroupFetch:
    """Each ticker's bars on its days, in one group fetch where the provider has one (whole
    days), else one fetch per ticker (from after `resume_after`'s bar where the provider can ask
    for less). A `ProviderSetupError` stops the whole group."""
    if isinstance(provider, GroupProvider):
        return provider.fetch_group(open_days)
    return fetch_each(provider, open_days, resume_after=resume_after, as_of=as_of)


def fetch_each(
    provider: MarketDataProvider,
    open_days: Mapping[str, Sequence[date]],
    *,
    resume_after: Mapping[str, datetime] | None = None,
    as_of: datetime | None = None,
) -> GroupFetch:
    """One fetch per ticker; a ticker's failure is recorded, a `ProviderSetupError` raised."""
    results: dict[str, FetchResult] = {}
    errors: dict[str, Exception] = {}
    cost = CallStats()
    for ticker, days in open_days.items():
        try:
            result = provider.fetch_bars(
                ticker, days, after=(resume_after or {}).get(ticker), as_of=as_of
            )
        except ProviderSetupError:
            raise
        except (ProviderError, BarsError) as error:
            errors[ticker] = error
            continue
        results[ticker] = result
        cost.add(result.cost)
    return GroupFetch(results, errors, cost)
