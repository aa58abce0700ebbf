"""Intraday: the part of a session that has happened by a given moment.

A bar or candle is stored only once its interval has ended: the still-forming last bar of a live
session never is, and a candle bucket only once it has closed. A session still in progress is
measured against the minutes that have elapsed, so the bars of its future are never missing.
How many refreshes a rate limit allows is decided here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from candle_pipeline.domain.bars import INTERVAL_SECONDS
from candle_pipeline.domain.sessions import not_closed

ONE_MINUTE = pd.Timedelta(minutes=1)
# Provider requests of one refresh. Each run is a fresh process whose yfinance caches start empty:
# a ticker costs its time-zone lookup and its chart request (one symbol per request), a run its
# cookie and crumb (measured against the tests' fake Yahoo service, README "Intraday").
REQUESTS_PER_TICKER_REFRESH = 2
REQUESTS_PER_RUN = 2


def _ends(frame: pd.DataFrame) -> pd.Series:
    return frame["ts"] + pd.to_timedelta(frame["interval"].map(INTERVAL_SECONDS), unit="s")


def ended_by(frame: pd.DataFrame, now: datetime) -> pd.Series:
    """True for the rows (bars or candles: `ts` start, `interval` width) that ended by `now`."""
    return _ends(frame) <= pd.Timestamp(now)


def closed_candles(candles: pd.DataFrame, unfinished: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The candles except the buckets of `unfinished` ticker-days (trade_date, ticker: their
    session has not closed) that have not ended by `now`."""
    if unfinished.empty or candles.empty:
        return candles
    keys = pd.MultiIndex.from_frame(unfinished.loc[:, ["trade_date", "ticker"]])
    of_unfinished = pd.MultiIndex.from_frame(candles.loc[:, ["trade_date", "ticker"]]).isin(keys)
    return candles[~of_unfinished | ended_by(candles, now)]


def in_session(timings: pd.DataFrame, now: datetime) -> pd.Series:
    """True for the sessions of `timings` that are open at `now` (a 24/7 market always is)."""
    moment = pd.Timestamp(now)
    return (
        timings["is_open"].astype(bool)
        & (timings["open_utc"] <= moment)
        & (moment < timings["close_utc"])
    )


def open_sessions(timings: pd.DataFrame, now: datetime) -> dict[str, date]:
    """Each exchange of `timings` whose regular session is open at `now`, with its session
    date (the day partition the session belongs to)."""
    rows = timings[in_session(timings, now)]
    return dict(zip(rows["mic"], rows["session_date"].dt.date, strict=True))


def elapsed_timings(timings: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """`timings` with each session that has not closed at `now` cut to its elapsed minutes
    (`expected_minute_bars`, lunch break excluded; none before the open): what a provisional
    day's completeness is measured against."""
    moment = pd.Timestamp(now)
    unfinished = not_closed(timings, now)
    if not unfinished.any():
        return timings
    rows = timings[unfinished]
    cut = rows["open_utc"].where(rows["open_utc"] > moment, moment)
    in_break = (
        cut.clip(lower=rows["break_start_utc"], upper=rows["break_end_utc"])
        - rows["break_start_utc"]
    ).fillna(pd.Timedelta(0))
    elapsed = ((cut - rows["open_utc"] - in_break) // ONE_MINUTE).astype("int64")
    cut_timings = timings.copy()
    cut_timings.loc[unfinished, "expected_minute_bars"] = elapsed.clip(lower=0)
    return cut_timings


def new_bars(
    bars: pd.DataFrame, resume_after: Mapping[str, datetime], now: datetime
) -> pd.DataFrame:
    """The bars that ended by `now` and, of a ticker in `resume_after`, come after its latest
    stored bar."""
    kept = ended_by(bars, now)
    if resume_after:
        last = pd.to_datetime(
            bars["ticker"].map({t: pd.Timestamp(at) for t, at in resume_after.items()}), utc=True
        )
        kept &= last.isna() | (bars["ts"] > last)
    return bars[kept]


class BudgetError(ValueError):
    """The intraday tickers cannot all be refreshed as often as asked within the rate limit."""


@dataclass(frozen=True)
class RequestBudget:
    """Provider requests one refresh needs (one run per exchange, every exchange open at once)
    and the rate limit allows between two refreshes."""

    tickers: int
    exchanges: int
    every_minutes: int
    requests_per_minute: float

    @property
    def needed(self) -> int:
        return self.tickers * REQUESTS_PER_TICKER_REFRESH + self.exchanges * REQUESTS_PER_RUN

    @property
    def allowed(self) -> int:
        return math.floor(self.requests_per_minute * self.every_minutes)

    def check(self) -> None:
        """Refuse a configuration that cannot fit, naming both numbers and the way out."""
        if self.needed > self.allowed:
            raise BudgetError(
                f"{self.tickers} intraday ticker(s) on {self.exchanges} exchange(s) need "
                f"{self.needed} requests every "
                f"{self.every_minutes} min, but the rate limit of {self.requests_per_minute:g} "
                f"requests/min allows {self.allowed}: refresh less often "
                "(CANDLE_INTRADAY_MINUTES), mark fewer tickers for intraday or raise "
                "CANDLE_PROVIDER_REQUESTS_PER_MINUTE"
            )
