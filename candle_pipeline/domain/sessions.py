"""Market timings: which days an exchange is open and when its regular session runs, in UTC.

Everything that depends on a trading day asks these functions; the facts come from
`exchange_calendars` (holidays, early closes, lunch breaks, daylight-saving switches), never from
rules of our own, with the calendar corrections in force laid over them
(`calendar_overrides`: closures, late opens and early closes the library does not know yet).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib.metadata import version

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from candle_pipeline.domain.calendar_overrides import (
    RegularSession,
    apply_overrides,
    overrides_frame,
)
from candle_pipeline.domain.exchanges import validate_mic

TIMING_COLUMNS = (
    "mic",
    "session_date",
    "is_open",
    "open_utc",
    "close_utc",
    "break_start_utc",
    "break_end_utc",
    "early_close",
    "expected_minute_bars",
)

SESSION_REGULAR = "regular"
SESSION_PRE = "pre"
SESSION_POST = "post"
SESSION_OUTSIDE = "outside"

NANOS_PER_MINUTE = 60 * 1_000_000_000
# Calendars kept per process: a few exchanges over the few year spans runs ask for.
CALENDARS_CACHED = 64


class MissingTimingsError(LookupError):
    """Market timings were asked for a day that has not been materialised."""


def calendar_version() -> str:
    """The installed exchange_calendars release, recorded with every timings materialisation."""
    return version("exchange_calendars")


# No calendar correction: the library's sessions as they are.
NO_OVERRIDES = overrides_frame([])


def market_timings(
    mics: Iterable[str], start: date, end: date, overrides: pd.DataFrame = NO_OVERRIDES
) -> pd.DataFrame:
    """One row per exchange and calendar day from `start` to `end` inclusive, with `overrides`
    (calendar_overrides.OVERRIDE_COLUMNS, the corrections in force) laid over the library's.

    Closed days have `is_open` False and no times; open days carry their regular session in UTC,
    the lunch break where the exchange has one, and the number of regular minute bars expected.
    """
    if end < start:
        raise ValueError(f"market timings range is reversed: {start} > {end}")
    codes = sorted(set(mics))
    frames = [_timings_for(mic, start, end) for mic in codes]
    if not frames:
        return empty_timings()
    timings = pd.concat(frames, ignore_index=True)
    timezones = {mic: exchange_calendar(mic, start, end).tz for mic in codes}
    return apply_overrides(timings, overrides[overrides["mic"].isin(codes)], timezones)


def regular_session(mic: str, day: date) -> RegularSession | None:
    """The library's session of `day` in the exchange's local time (no override), or None."""
    calendar = exchange_calendar(mic, day, day)
    row = _timings_for(mic, day, day).iloc[0]
    if not row["is_open"]:
        return None
    return RegularSession(
        open=row["open_utc"].tz_convert(calendar.tz), close=row["close_utc"].tz_convert(calendar.tz)
    )


def sessions_in_progress(
    mics: Iterable[str], day: date, now: datetime, overrides: pd.DataFrame = NO_OVERRIDES
) -> dict[str, pd.Timestamp]:
    """The exchanges among `mics` whose regular session of `day` (with `overrides`) has not
    closed at `now` (UTC): MIC -> the session's close. A day whose session is in progress is not
    over yet."""
    timings = market_timings(mics, day, day, overrides)
    running = timings[not_closed(timings, now)]
    return dict(zip(running["mic"], running["close_utc"], strict=True))


def not_closed(timings: pd.DataFrame, now: datetime) -> pd.Series:
    """True for the sessions of `timings` (`is_open`, `close_utc`) that have not closed at `now`:
    open, or still to open. Such a day is not over yet."""
    return timings["is_open"].astype(bool) & (timings["close_utc"] > pd.Timestamp(now))


def empty_timings() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in TIMING_COLUMNS})
    return frame.astype(
        {
            "session_date": "datetime64[ns]",
            "is_open": bool,
            "open_utc": "datetime64[ns, UTC]",
            "close_utc": "datetime64[ns, UTC]",
            "break_start_utc": "datetime64[ns, UTC]",
            "break_end_utc": "datetime64[ns, UTC]",
            "early_close": bool,
            "expected_minute_bars": "int64",
        }
    )


def exchange_calendar(mic: str, start: date, end: date) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar of `mic` covering `start` to `end` (whole years, built
    once per process: building one takes a good part of a second), or a clear error."""
    validate_mic(mic)
    return _calendar_of_years(mic, start.year, end.year)


@functools.lru_cache(maxsize=CALENDARS_CACHED)
def _calendar_of_years(mic: str, first_year: int, last_year: int) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(
        mic, start=pd.Timestamp(date(first_year, 1, 1)), end=pd.Timestamp(date(last_year, 12, 31))
    )


def _timings_for(mic: str, start: date, end: date) -> pd.DataFrame:
    calendar = exchange_calendar(mic, start, end)
    days = pd.date_range(start, end, freq="D")
    schedule = calendar.schedule.reindex(days)
    is_open = schedule["open"].notna().to_numpy()
    early = np.isin(days, calendar.early_closes)
    breaks = (schedule["break_end"] - schedule["break_start"]).fillna(pd.Timedelta(0))
    session_length = (schedule["close"] - schedule["open"]) - breaks
    expected = (session_length.fillna(pd.Timedelta(0)) // pd.Timedelta(minutes=1)).astype("int64")

    def utc(column: str) -> pd.Series:
        return pd.to_datetime(schedule[column], utc=True).reset_index(drop=True)

    return pd.DataFrame(
        {
            "mic": mic,
            "session_date": days,
            "is_open": is_open,
            "open_utc": utc("open"),
            "close_utc": utc("close"),
            "break_start_utc": utc("break_start"),
            "break_end_utc": utc("break_end"),
            "early_close": early,
            "expected_minute_bars": expected.to_numpy(),
        }
    ).astype(
        {
            "open_utc": "datetime64[ns, UTC]",
            "close_utc": "datetime64[ns, UTC]",
            "break_start_utc": "datetime64[ns, UTC]",
            "break_end_utc": "datetime64[ns, UTC]",
        }
    )


@dataclass(frozen=True)
class ExchangeDirectory:
    """Which exchange (MIC) each ticker trades on; tickers not listed trade on `default`."""

    default: str
    by_ticker: Mapping[str, str]

    def mic_for(self, ticker: str) -> str:
        return self.by_ticker.get(ticker, self.default)

    def mics_for(self, tickers: Iterable[str]) -> set[str]:
        return {self.mic_for(ticker) for ticker in tickers}


def attach_sessions(
    bars: pd.DataFrame, timings: pd.DataFrame, exchanges: ExchangeDirectory
) -> pd.DataFrame:
    """Bars with their exchange's session for their trade date: mic, open_utc, close_utc, breaks."""
    with_mic = bars.assign(mic=bars["ticker"].map(exchanges.mic_for))
    session_cols = [
        "mic",
        "session_date",
        "open_utc",
        "close_utc",
        "break_start_utc",
        "break_end_utc",
        "expected_minute_bars",
    ]
    merged = with_mic.merge(
        timings[session_cols],
        how="left",
        left_on=["mic", "trade_date"],
        right_on=["mic", "session_date"],
        validate="many_to_one",
        indicator=True,
    )
    missing = merged["_merge"] != "both"
    if missing.any():
        first = merged.loc[missing].iloc[0]
        raise MissingTimingsError(
            f"no market timings for {first['mic']} on {pd.Timestamp(first['trade_date']).date()}: "
            "materialise market_timings for that day first"
        )
    merged.index = bars.index
    return merged.drop(columns=["session_date", "_merge"])


def session_tags(bars_with_sessions: pd.DataFrame) -> pd.Series:
    """`regular`, `pre`, `post` or `outside` for each bar.

    Daily bars summarise the regular session. Bars in a lunch break or on a day without a session
    are `outside`: neither before the open nor after the close.
    """
    ts = bars_with_sessions["ts"]
    opens = bars_with_sessions["open_utc"]
    closes = bars_with_sessions["close_utc"]
    in_break = (ts >= bars_with_sessions["break_start_utc"]) & (
        ts < bars_with_sessions["break_end_utc"]
    )
    daily = bars_with_sessions["interval"] == "1d"
    conditions = [
        daily,
        opens.isna(),
        ts < opens,
        ts >= closes,
        in_break,
    ]
    choices = [SESSION_REGULAR, SESSION_OUTSIDE, SESSION_PRE, SESSION_POST, SESSION_OUTSIDE]
    tags = np.select(conditions, choices, default=SESSION_REGULAR)
    return pd.Series(tags, index=bars_with_sessions.index, name="session")
