"""The `csv` provider: bars from files in QuantConnect Lean's re-encoded layouts.

- `lean-minute/<TICKER>/<YYYY-MM-DD>.csv`: `ts,open,high,low,close,volume`, ts the bar start in
  UTC, pre- and post-market included;
- `lean-daily/<TICKER>.csv`: `date,open,high,low,close,volume`, one row per session;
- `lean-daily/factor_files/<TICKER>.csv`: Lean's factor file (`date,price_factor,split_factor,
  reference_price`, no header), read as the ticker's complete history of splits and dividends
  (`domain.adjustments.actions_from_factor_file`) with each fetch.

For each day the finest data wins: the minute file when it exists, else the day's daily bar.
Lean's prices are raw (as traded). Each file read counts as one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from candle_pipeline.domain.adjustments import FACTOR_FILE_COLUMNS, actions_from_factor_file
from candle_pipeline.domain.bars import VALUE_COLUMNS, BarsError, check_bars, empty_bars
from candle_pipeline.domain.corporate_actions import empty_actions
from candle_pipeline.domain.sessions import exchange_calendar
from candle_pipeline.providers.base import FetchResult

# The bundled sample Lean folder: the csv source's default and what `demo` loads.
SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
MINUTE_DIR = "lean-minute"
DAILY_DIR = "lean-daily"
MINUTE_COLUMNS = ("ts", *VALUE_COLUMNS)
DAILY_COLUMNS = ("date", *VALUE_COLUMNS)
FACTOR_DIR = "factor_files"
# Lean's `usa` equity data is stamped in New York time; daily bars start at local midnight.
LEAN_TIMEZONE = "America/New_York"
# The exchange whose sessions place Lean's `usa` actions; their prices and dividends are in USD.
LEAN_EXCHANGE = "XNYS"
LEAN_CURRENCY = "USD"


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
        actions = empty_actions()
        factor_file = self.root / DAILY_DIR / FACTOR_DIR / f"{ticker}.csv"
        if days and factor_file.is_file():
            actions = _read_factor_file(factor_file, ticker)
            requests += 1
        return FetchResult(
            bars=check_bars(bars, f"csv {ticker}"), requests=requests, actions=actions
        )


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


def _read_factor_file(path: Path, ticker: str) -> pd.DataFrame:
    """The factor file's actions, effective on the next session of Lean's exchange after each
    row's date."""
    try:
        factors = pd.read_csv(path, header=None, names=list(FACTOR_FILE_COLUMNS))
        numbers = factors.astype(
            {"price_factor": "float64", "split_factor": "float64", "reference_price": "float64"}
        )
        dates = pd.to_datetime(numbers["date"].astype(str), format="%Y%m%d")
        # The last row is Lean's open end (2050-12-31): the calendar covers the rows before it.
        span = dates.iloc[:-1] if len(dates) > 1 else dates
        calendar = exchange_calendar(LEAN_EXCHANGE, span.min().date(), span.max().date())
        actions = actions_from_factor_file(numbers, ticker, calendar.sessions)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BarsError(f"{path}: not a readable factor file ({error})") from None
    except (ValueError, TypeError):
        raise BarsError(
            f"{path}: not a Lean factor file ({','.join(FACTOR_FILE_COLUMNS)}, dates as YYYYMMDD)"
        ) from None
    return actions.assign(currency=LEAN_CURRENCY)


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
