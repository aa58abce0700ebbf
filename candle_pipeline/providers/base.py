"""The one small interface every market-data source implements, and the errors it raises."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

import pandas as pd

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


@dataclass(frozen=True)
class FetchResult:
    """Bars in the canonical columns (domain.bars.BAR_COLUMNS, plus `adj_close` when the provider
    has it), the corporate actions seen on the requested days, and what the fetch cost.

    `dropped` counts rows the provider returned but that are not stored, by reason (all-NaN rows,
    repeated timestamps, bars of a session still in progress, days that were not asked for).
    `exchange_name` is the provider's own name of the ticker's exchange (Yahoo's `exchangeName`,
    e.g. `NMS`) when it reports one.
    """

    bars: pd.DataFrame
    requests: int
    actions: pd.DataFrame = field(default_factory=empty_actions)
    dropped: Mapping[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled_seconds: float = 0.0
    backoff_seconds: float = 0.0
    exchange_name: str | None = None


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
