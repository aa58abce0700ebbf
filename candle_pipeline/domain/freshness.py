"""Freshness: once an exchange's latest session is due (its close plus a delay), every ticker on
that exchange must have that day's candles.

Sessions, early closes and holidays come from `sessions.market_timings` (exchange_calendars with
the calendar corrections in force).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from candle_pipeline.domain.sessions import NO_OVERRIDES, ExchangeDirectory, market_timings


@dataclass(frozen=True)
class DueSession:
    """An exchange's latest session whose data is due by now."""

    mic: str
    session_date: date
    due_at: pd.Timestamp


def freshness_window(now: datetime, lookback_days: int) -> tuple[date, date]:
    """The days whose sessions may be the latest due one at `now`: sessions are dated in the
    exchange's own time zone, up to a day ahead of UTC."""
    now_utc = pd.Timestamp(now).tz_convert("UTC")
    first = now_utc - pd.Timedelta(days=lookback_days)
    return first.date(), (now_utc + pd.Timedelta(days=1)).date()


def latest_due_sessions(
    mics: Iterable[str],
    now: datetime,
    delay: timedelta,
    lookback_days: int,
    overrides: pd.DataFrame = NO_OVERRIDES,
) -> dict[str, DueSession]:
    """Per exchange, the latest session with `close + delay <= now` within `lookback_days`
    (`overrides`: the calendar corrections in force)."""
    now_utc = pd.Timestamp(now).tz_convert("UTC")
    first, last = freshness_window(now, lookback_days)
    timings = market_timings(sorted(set(mics)), first, last, overrides)
    sessions = timings[timings["is_open"]].assign(due_at=lambda t: t["close_utc"] + delay)
    due = sessions[sessions["due_at"] <= now_utc].sort_values("session_date")
    latest = due.groupby("mic").tail(1)
    return {
        mic: DueSession(mic, pd.Timestamp(day).date(), due_at)
        for mic, day, due_at in latest[["mic", "session_date", "due_at"]].itertuples(index=False)
    }


def due_ticker_days(
    tickers: Iterable[str], exchanges: ExchangeDirectory, due_sessions: dict[str, DueSession]
) -> list[tuple[date, str]]:
    """(day, ticker) of each ticker's exchange's latest due session; tickers on an exchange with
    no due session in the window are left out."""
    return [
        (due_sessions[exchanges.mic_for(ticker)].session_date, ticker)
        for ticker in sorted(tickers)
        if exchanges.mic_for(ticker) in due_sessions
    ]
