"""Crypto exchanges through `ccxt`, the maintained unified client of 100+ exchanges: OHLCV bars
of pairs such as `BTC/USDT`, on the 24/7 calendar (every calendar day is a session, in UTC).

`fetch_ohlcv` is asked from the first requested day's midnight (UTC) with `since` and `limit`,
page after page (the next page starts one interval after the last bar) until the last requested
day is covered. ccxt sends every HTTP request through our `ProviderSession`, so each one takes a
token from the provider's bucket, is replayed when a replay folder is set, and is counted; ccxt's
own rate limit (`enableRateLimit`, its per-exchange delay) applies inside that. An exchange's
ban (HTTP 418) or 429 never reaches ccxt: the session turns it into `retry_later` or a retry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import ccxt
import pandas as pd

from candle_pipeline.domain.bars import INTERVAL_SECONDS, check_bars, empty_bars, storable_rows
from candle_pipeline.providers.base import (
    CallStats,
    FetchResult,
    ProviderError,
    ProviderSetupError,
    TransientProviderError,
)
from candle_pipeline.providers.http import ProviderSession, counting
from candle_pipeline.providers.resilience import Resilience

# Candles asked for per request: Binance's largest spot page; ccxt lowers it to what an
# exchange allows.
OHLCV_PAGE_LIMIT = 1000
MILLISECONDS = 1000
CCXT_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")
# A 24/7 market's session date is the UTC date of the bar.
TIMEZONE = "UTC"
# Markets loaded: spot only (one request instead of three on Binance; pairs like BTC/USDT).
EXCHANGE_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def exchange_client(
    exchange: str, session: ProviderSession, timeout_seconds: float
) -> ccxt.Exchange:
    """The ccxt client of `exchange` sending its requests through `session`."""
    if exchange not in ccxt.exchanges:
        raise ProviderSetupError(f"ccxt knows no exchange {exchange!r} (CANDLE_CCXT_EXCHANGE)")
    client = getattr(ccxt, exchange)(
        {
            "enableRateLimit": True,
            "timeout": int(timeout_seconds * MILLISECONDS),
            "options": EXCHANGE_OPTIONS,
        }
    )
    client.session = session
    return client


def exchange_requests_per_minute(exchange: str) -> float:
    """The request rate ccxt keeps to for `exchange` (its `rateLimit`: milliseconds between
    requests)."""
    if exchange not in ccxt.exchanges:
        raise ProviderSetupError(f"ccxt knows no exchange {exchange!r} (CANDLE_CCXT_EXCHANGE)")
    return 60 * MILLISECONDS / getattr(ccxt, exchange)().rateLimit


@dataclass
class CcxtProvider:
    """Bars of one crypto pair per call, `limit` candles per request."""

    client: ccxt.Exchange
    interval: str
    resilience: Resilience
    clock: Callable[[], datetime] = field(default=_utc_now)
    page_limit: int = OHLCV_PAGE_LIMIT

    @property
    def name(self) -> str:
        return f"ccxt:{self.client.id}"

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult:
        """Whole days (`after` and `as_of` are the client's to apply)."""
        stats = CallStats()
        step = INTERVAL_SECONDS[self.interval] * MILLISECONDS
        since = _milliseconds(min(days))
        end = _milliseconds(max(days) + timedelta(days=1))
        rows: list[list[float]] = []
        with counting(stats):
            while since < end:
                page = self.candles(ticker, since, stats)
                if not page:
                    break
                rows.extend(page)
                following = int(page[-1][0]) + step
                if following <= since:
                    break
                since = following
        bars, dropped = self._bars(rows, ticker, days)
        if bars.empty:
            raise ProviderError(
                f"{self.name} {ticker} {self.interval} {min(days)}..{max(days)}: no storable "
                f"bar for the {len(days)} requested day(s); nothing is stored"
            )
        return FetchResult.measured(bars, stats, dropped=dropped)

    def candles(self, symbol: str, since: int, stats: CallStats) -> list[list[float]]:
        """One page of ccxt's unified OHLCV (`[ms, open, high, low, close, volume]`, oldest
        first) from `since`, under the retry policy."""
        what = f"{self.name} {symbol} {self.interval} since {pd.Timestamp(since, unit='ms')}"
        return self.resilience.call(what, lambda: self._ohlcv(symbol, since, what), stats)

    def _ohlcv(self, symbol: str, since: int, what: str) -> list[list[float]]:
        try:
            return self.client.fetch_ohlcv(symbol, self.interval, since, self.page_limit)
        except (ccxt.AuthenticationError, ccxt.PermissionDenied) as error:
            raise ProviderSetupError(f"{what}: {type(error).__name__}: {error}") from None
        except ccxt.NetworkError as error:
            raise TransientProviderError(f"{what}: {type(error).__name__}: {error}") from None
        except ccxt.BaseError as error:
            raise ProviderError(f"{what}: {type(error).__name__}: {error}") from None

    def _bars(
        self, rows: list[list[float]], ticker: str, days: Sequence[date]
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        frame = pd.DataFrame(rows, columns=["t", "o", "h", "l", "c", "v"])
        stamps = pd.to_datetime(frame["t"].astype("int64"), unit="ms", utc=True)
        shaped = pd.DataFrame(
            {
                "ticker": ticker,
                "trade_date": stamps.dt.tz_localize(None).dt.normalize(),
                "interval": self.interval,
                "ts": stamps,
                "open": frame["o"],
                "high": frame["h"],
                "low": frame["l"],
                "close": frame["c"],
                "volume": frame["v"],
            }
        )
        today = pd.Timestamp(self.clock()).tz_convert(TIMEZONE).tz_localize(None).normalize()
        kept, dropped = storable_rows(shaped, days, shaped["trade_date"] >= today)
        bars = check_bars(shaped[kept], f"{self.name} {ticker}")
        return (bars if not bars.empty else empty_bars()), dropped


def _milliseconds(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp() * MILLISECONDS)
