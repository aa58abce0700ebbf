"""The `csv` provider: bars from files in QuantConnect Lean's re-encoded layouts.

- `lean-minute/<TICKER>/<YYYY-MM-DD>.csv`: `ts,open,high,low,close,volume`, ts the bar start in
  UTC, pre- and post-market included;
- `lean-daily/<TICKER>.csv`: `date,open,high,low,close,volume`, one row per session.

For each day the finest data wins: the minute file when it exists, else the day's daily bar.
Each file read counts as one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from candle_pipeline.domain.bars import VALUE_COLUMNS, BarsError, check_bars, empty_bars
from candle_pipeline.providers.base import FetchResult

MINUTE_DIR = "lean-minute"
DAILY_DIR = "lean-daily"
MINUTE_COLUMNS = ("ts", *VALUE_COLUMNS)
DAILY_COLUMNS = ("date", *VALUE_COLUMNS)
# Lean's `usa` equity data is stamped in New York time; daily bars start at local midnight.
LEAN_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class CsvProvider:
    root: Path
    name: str = "csv"

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult:
        """Whole days from the files (`after` and `as_of` are the client's to apply)."""
        frames: list[pd.DataFrame] = []
        requests = 0
        daily: pd.DataFrame | None = None
        for day in sorted(set(days)):
            minute_file = self.root / MINUTE_DIR / ticker / f"{day.isoformat()}.csv"
            if minute_file.is_file():
                frames.append(_read_minute_file(minute_file, ticker, day))
                requests += 1
                continue
            if daily is None:
                daily_file = self.root / DAILY_DIR / f"{ticker}.csv"
                if not daily_file.is_file():
                    continue
                daily = _read_daily_file(daily_file, ticker)
                requests += 1
            frames.append(daily[daily["trade_date"] == pd.Timestamp(day)])
        bars = pd.concat(frames, ignore_index=True) if frames else empty_bars()
        return FetchResult(bars=check_bars(bars, f"csv {ticker}"), requests=requests)


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BarsError(f"{path}: not a readable CSV file ({error})") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise BarsError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def _parse_times(values: pd.Series, path: Path, what: str, **kwargs: object) -> pd.Series:
    try:
        return pd.to_datetime(values, format="ISO8601", **kwargs)
    except (ValueError, TypeError):
        raise BarsError(f"{path}: column {what} holds values that are not dates/times") from None


def _read_minute_file(path: Path, ticker: str, day: date) -> pd.DataFrame:
    frame = _read_csv(path, MINUTE_COLUMNS)
    ts = _parse_times(frame["ts"], path, "ts", utc=True)
    local_days = ts.dt.tz_convert(LEAN_TIMEZONE).dt.date
    if (local_days != day).any():
        raise BarsError(f"{path}: {int((local_days != day).sum())} bar(s) fall outside {day}")
    bars = frame.assign(ticker=ticker, trade_date=pd.Timestamp(day), interval="1m", ts=ts)
    return check_bars(bars, str(path))


def _read_daily_file(path: Path, ticker: str) -> pd.DataFrame:
    frame = _read_csv(path, DAILY_COLUMNS)
    session_dates = _parse_times(frame["date"], path, "date")
    bars = frame.assign(
        ticker=ticker,
        trade_date=session_dates,
        interval="1d",
        ts=session_dates.dt.tz_localize(LEAN_TIMEZONE),
    )
    return check_bars(bars, str(path))
