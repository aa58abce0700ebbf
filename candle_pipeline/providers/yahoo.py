"""The `yahoo` provider: raw bars, splits and dividends from Yahoo's chart API via yfinance.

- The ticker is spelled the Yahoo way (`domain.symbols.normalize_ticker`) before any request.
- Days are grouped into as few requests as Yahoo's windows allow (`domain.request_windows`);
  days outside them are an error naming the limit.
- yfinance is asked for raw prices (`auto_adjust=False`, no repair) with `adj_close`, dividends and
  splits, NaN rows kept so that we drop and count them ourselves; with its exception hiding off,
  every failure raises instead of becoming an empty or NaN frame.
- Bars carry their start in UTC and the exchange-local session date as `trade_date`.
- Not stored, and counted: repeated timestamps, all-NaN rows, bars still forming (not ended by
  the fetch's moment: the live last bar of an open session, today's daily bar) and bars of days
  that were not asked for.
- An intraday refresh asks from the bar after the latest stored one (`after`), not from midnight.
- A window answered with no bar at all is an error (nothing is stored for it), except in a
  refresh, where nothing new is an answer.
- Every HTTP request goes through `yahoo_http.YahooSession` (rate limit, replay, errors).
- Yahoo divides every bar by the splits after it, as of the day of the request: the result says
  so (`split_adjusted_as_of`) and carries the splits up to that day, asking for the events after
  the last requested day in one more request (daily bars) when the windows end before it; the
  processing step un-adjusts the bars (`domain.adjustments`). Replaying, that request is made
  when a recording holds it; otherwise the answers count as served on the last requested day.

yfinance's time-zone and cookie caches (SQLite files) live in a fresh folder per process, so
processes never share or lock them and a read-only home folder does not matter.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import yfinance as yf
from yfinance.data import YfData
from yfinance.exceptions import YFException, YFPricesMissingError, YFTickerMissingError

from candle_pipeline.domain.bars import (
    ADJ_CLOSE,
    BAR_COLUMNS,
    INTERVAL_SECONDS,
    check_bars,
    empty_bars,
    storable_rows,
)
from candle_pipeline.domain.corporate_actions import ACTION_COLUMNS, empty_actions
from candle_pipeline.domain.intraday import ended_by
from candle_pipeline.domain.request_windows import request_windows
from candle_pipeline.domain.symbols import normalize_ticker
from candle_pipeline.providers.base import (
    CallStats,
    FetchResult,
    ProviderError,
    TransientProviderError,
)
from candle_pipeline.providers.rate_limit import RateLimiter
from candle_pipeline.providers.replay import RecordedExchanges
from candle_pipeline.providers.resilience import Resilience
from candle_pipeline.providers.yahoo_http import Route, YahooSession, routed

# The bar width of the request for the corporate actions after the requested days.
EVENTS_INTERVAL = "1d"
# Bar widths Yahoo is asked for (its own names); daily bars reach back to a listing's first day.
YAHOO_INTERVALS = ("1m", "2m", "5m", "15m", "30m", "1h", "1d")
# Yahoo's request windows per interval, in calendar days: (longest span one request may cover,
# how far back from today the interval is served). None: no limit. Yahoo documents none of this;
# these are the limits it enforces today (yfinance encodes the same numbers).
YAHOO_WINDOW_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "1m": (8, 30),
    "2m": (60, 60),
    "5m": (60, 60),
    "15m": (60, 60),
    "30m": (60, 60),
    "1h": (730, 730),
    "1d": (None, None),
}


_SESSION: YahooSession | None = None
_SETUP_LOCK = threading.Lock()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _yfinance_session() -> YahooSession:
    """The process's one session for yfinance, after configuring yfinance once."""
    global _SESSION  # noqa: PLW0603 - one yfinance configuration per process
    with _SETUP_LOCK:
        if _SESSION is None:
            yf.config.debug.hide_exceptions = False
            cache_dir = tempfile.mkdtemp(prefix="candle-yfinance-")
            atexit.register(shutil.rmtree, cache_dir, ignore_errors=True)
            yf.set_tz_cache_location(cache_dir)
            _SESSION = YahooSession()
        return _SESSION


@dataclass
class YahooProvider:
    """Bars of one ticker per call, one request per Yahoo window (Yahoo has no multi-symbol
    chart request)."""

    interval: str
    resilience: Resilience
    timeout_seconds: float
    limiter: RateLimiter | None = None
    base_url: str | None = None
    replay: RecordedExchanges | None = None
    clock: Callable[[], datetime] = field(default=_utc_now)
    name: str = "yahoo"

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult:
        symbol = normalize_ticker(ticker)
        now = as_of or self.clock()
        windows = request_windows(
            days, self.interval, now.astimezone(UTC).date(), YAHOO_WINDOW_LIMITS, "Yahoo"
        )
        stats = CallStats()
        bars, actions, dropped = [], [], Counter[str]()
        exchange_names: set[str] = set()
        local_today: date | None = None
        for first, last in windows:
            wanted = [day for day in days if first <= day <= last]
            start = (
                after + timedelta(seconds=INTERVAL_SECONDS[self.interval])
                if after is not None and first <= after.date() <= last
                else first
            )
            what = f"Yahoo {symbol} {self.interval} {start}..{last}"
            request = functools.partial(self._history, symbol, start, last, stats, what)
            history, exchange_name = self.resilience.call(what, request, stats)
            if exchange_name:
                exchange_names.add(exchange_name)
            local_today = _local_day(history, now)
            window_bars, window_actions, window_dropped = bars_from_history(
                history, ticker, self.interval, wanted, now
            )
            if window_bars.empty and after is None:
                counts = ", ".join(f"{n} {reason}" for reason, n in window_dropped.items())
                raise ProviderError(
                    f"{what}: Yahoo returned no storable bar for the {len(wanted)} requested "
                    f"day(s){f' (dropped: {counts})' if counts else ''}; nothing is stored"
                )
            bars.append(window_bars)
            actions.append(window_actions)
            dropped.update(window_dropped)
        if local_today is not None and windows[-1][1] < local_today:
            later = (windows[-1][1] + timedelta(days=1), local_today)
            if self.replay is None or self.replay.holds(symbol, EVENTS_INTERVAL, *later):
                actions.append(self._later_actions(ticker, symbol, later, stats))
            else:
                # A replayed answer is taken as served on its last day: nothing later is recorded.
                local_today = windows[-1][1]
        return FetchResult.measured(
            pd.concat(bars, ignore_index=True) if bars else empty_bars((*BAR_COLUMNS, ADJ_CLOSE)),
            stats,
            actions=pd.concat(actions, ignore_index=True) if actions else empty_actions(),
            dropped=dict(dropped),
            exchange_name=min(exchange_names) if len(exchange_names) == 1 else None,
            split_adjusted_as_of=local_today,
        )

    def _later_actions(
        self, ticker: str, symbol: str, days: tuple[date, date], stats: CallStats
    ) -> pd.DataFrame:
        """The splits and dividends of `days` (first, last): one request of daily bars, whose
        events are all it is asked for."""
        first, last = days
        what = f"Yahoo {symbol} corporate actions {first}..{last}"
        daily = dataclasses.replace(self, interval=EVENTS_INTERVAL)
        request = functools.partial(daily._history, symbol, first, last, stats, what)
        history, _ = self.resilience.call(what, request, stats)
        index = pd.DatetimeIndex(history.index)
        frame = pd.DataFrame(
            {
                "trade_date": index.tz_localize(None).normalize(),
                "dividend": history["Dividends"].to_numpy(dtype="float64"),
                "split_ratio": history["Stock Splits"].to_numpy(dtype="float64"),
            }
        )
        asked = (frame["trade_date"] >= pd.Timestamp(first)) & (
            frame["trade_date"] <= pd.Timestamp(last)
        )
        return _actions(frame[asked], ticker)

    def _history(
        self, symbol: str, first: date | datetime, last: date, stats: CallStats, what: str
    ) -> tuple[pd.DataFrame, str | None]:
        """One yfinance `history` call (a tz lookup the first time, then the chart request),
        from the start of day `first` or from the moment `first`.

        Returns the bars and Yahoo's `exchangeName` from the same answer's metadata.
        """
        session = _yfinance_session()
        route = Route(
            stats=stats,
            timeout_seconds=self.timeout_seconds,
            limiter=self.limiter,
            base_url=self.base_url,
            replay=self.replay,
        )
        # yfinance keeps past answers in an in-memory cache; a retry must really ask again.
        YfData.cache_get.cache_clear()
        with routed(route):
            ticker = yf.Ticker(symbol, session=session)
            try:
                history = ticker.history(
                    start=first if isinstance(first, datetime) else first.isoformat(),
                    end=(last + timedelta(days=1)).isoformat(),
                    interval=self.interval,
                    prepost=self.interval != "1d",
                    actions=True,
                    auto_adjust=False,
                    back_adjust=False,
                    repair=False,
                    keepna=True,
                    rounding=False,
                    timeout=self.timeout_seconds,
                )
            except ProviderError:
                raise
            except json.JSONDecodeError as error:
                raise TransientProviderError(
                    f"{what}: Yahoo sent malformed JSON ({error})"
                ) from None
            except YFPricesMissingError as error:
                if error.yahoo_reason is not None:
                    raise ProviderError(f"{what}: Yahoo says: {error.yahoo_reason}") from None
                raise ProviderError(
                    f"{what}: Yahoo answered without any bars; nothing is stored ({error})"
                ) from None
            except YFTickerMissingError as error:
                raise ProviderError(f"{what}: unknown or delisted symbol ({error})") from None
            except (YFException, KeyError, TypeError, ValueError) as error:
                raise ProviderError(
                    f"{what}: Yahoo's answer could not be read: {type(error).__name__}: {error}"
                ) from None
        metadata = ticker.history_metadata or {}
        return history, metadata.get("exchangeName")


def _local_day(history: pd.DataFrame, now: datetime) -> date | None:
    """The day of `now` in the time zone of the answer's exchange (None: no time zone)."""
    zone = pd.DatetimeIndex(history.index).tz
    return None if zone is None else pd.Timestamp(now).tz_convert(zone).date()


def bars_from_history(
    history: pd.DataFrame,
    ticker: str,
    interval: str,
    wanted: Collection[date],
    now: datetime,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """yfinance's `history` frame as canonical bars (with `adj_close`) and corporate actions.

    Returns the bars to store, the actions from the first to the last wanted day, and the rows
    not stored by reason.
    """
    index = pd.DatetimeIndex(history.index)
    if index.tz is None:
        raise ProviderError(f"yfinance returned {ticker} bars without a time zone")
    local_day = index.tz_localize(None).normalize()
    frame = pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": local_day,
            "interval": interval,
            "ts": index.tz_convert("UTC"),
            "open": history["Open"].to_numpy(dtype="float64"),
            "high": history["High"].to_numpy(dtype="float64"),
            "low": history["Low"].to_numpy(dtype="float64"),
            "close": history["Close"].to_numpy(dtype="float64"),
            "volume": history["Volume"].to_numpy(dtype="float64"),
            ADJ_CLOSE: history["Adj Close"].to_numpy(dtype="float64"),
            "dividend": history["Dividends"].to_numpy(dtype="float64"),
            "split_ratio": history["Stock Splits"].to_numpy(dtype="float64"),
        }
    )
    live = ~ended_by(frame, now)
    kept, dropped = storable_rows(frame, wanted, live)
    bars = check_bars(frame[kept], f"Yahoo {ticker}", extra=(ADJ_CLOSE,))
    # Every action inside the asked span counts, asked day or not: a split between two asked
    # days divides the first one's bar.
    days = pd.to_datetime(list(wanted))
    asked = frame["trade_date"].isin(days)
    spanned = frame["trade_date"].between(days.min(), days.max()) if len(days) else asked
    actions = _actions(frame[spanned & ~live], ticker)
    return bars, actions, dropped


def _actions(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    events = frame[(frame["dividend"].fillna(0) != 0) | (frame["split_ratio"].fillna(0) != 0)]
    if events.empty:
        return empty_actions()
    by_day = (
        events.assign(
            dividend=events["dividend"].where(events["dividend"] != 0),
            split_ratio=events["split_ratio"].where(events["split_ratio"] != 0),
        )
        .groupby("trade_date", as_index=False)[["dividend", "split_ratio"]]
        .max()
    )
    return by_day.rename(columns={"trade_date": "ex_date"}).assign(ticker=ticker)[
        list(ACTION_COLUMNS)
    ]
