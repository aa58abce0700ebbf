"""Corrupted copies of real minute files, each broken the way a provider breaks data."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR

MINUTE_DIR = "lean-minute"
DAILY_DIR = "lean-daily"
NEW_YORK = "America/New_York"
PRICES = ["open", "high", "low", "close"]


def read_day(ticker: str, day: str) -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA_DIR / MINUTE_DIR / ticker / f"{day}.csv", parse_dates=["ts"])


def write_day(root: Path, ticker: str, day: str, bars: pd.DataFrame) -> None:
    folder = root / MINUTE_DIR / ticker
    folder.mkdir(parents=True, exist_ok=True)
    out = bars.assign(ts=bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    out.to_csv(folder / f"{day}.csv", index=False)


def copy_ticker(root: Path, ticker: str) -> None:
    shutil.copytree(SAMPLE_DATA_DIR / MINUTE_DIR / ticker, root / MINUTE_DIR / ticker)


def copy_daily(
    root: Path, ticker: str, change: Callable[[pd.DataFrame], None] | None = None
) -> Path:
    """`ticker`'s daily bars and factor file from the sample in a Lean folder at `root`; `change`
    edits the bars in place first (a hand-made variant). Returns `root`."""
    daily = root / DAILY_DIR
    (daily / "factor_files").mkdir(parents=True)
    source = SAMPLE_DATA_DIR / DAILY_DIR
    shutil.copy(source / "factor_files" / f"{ticker}.csv", daily / "factor_files" / f"{ticker}.csv")
    bars = pd.read_csv(source / f"{ticker}.csv", dtype={"date": str})
    if change is not None:
        change(bars)
    bars.to_csv(daily / f"{ticker}.csv", index=False)
    return root


def new_york_minutes(bars: pd.DataFrame) -> pd.Series:
    local = bars["ts"].dt.tz_convert(NEW_YORK)
    return local.dt.hour * 60 + local.dt.minute


def between(bars: pd.DataFrame, start: str, end: str) -> pd.Series:
    """Rows whose New York time is in [start, end), e.g. between(bars, "13:00", "14:00")."""
    minutes = new_york_minutes(bars)
    to_minutes = [int(h) * 60 + int(m) for h, m in (t.split(":") for t in (start, end))]
    return (minutes >= to_minutes[0]) & (minutes < to_minutes[1])


def nan_hour(bars: pd.DataFrame) -> pd.DataFrame:
    """The provider sent empty values for an hour of the session (13:00-14:00 New York)."""
    broken = bars.copy()
    broken.loc[between(bars, "13:00", "14:00"), [*PRICES, "volume"]] = float("nan")
    return broken


def high_low_swapped(bars: pd.DataFrame) -> pd.DataFrame:
    """The provider swapped the high and low columns: high < low on every bar with a range."""
    return bars.rename(columns={"high": "low", "low": "high"})[bars.columns]


def jump_60_percent(bars: pd.DataFrame) -> pd.DataFrame:
    """Every price from 12:00 New York on is 60% higher: a jump no split explains."""
    broken = bars.copy()
    broken.loc[between(bars, "12:00", "20:00"), PRICES] *= 1.6
    return broken


def third_removed(bars: pd.DataFrame) -> pd.DataFrame:
    """130 of the 390 regular minutes are missing (11:00-13:10 New York)."""
    return bars[~between(bars, "11:00", "13:10")].reset_index(drop=True)


def stale_quarter_hour(bars: pd.DataFrame) -> pd.DataFrame:
    """A feed frozen for 15 minutes (14:00-14:15): the same price, no volume."""
    broken = bars.copy()
    frozen = between(bars, "14:00", "14:15")
    broken.loc[frozen, PRICES] = broken.loc[frozen, "close"].iloc[0]
    broken.loc[frozen, "volume"] = 0.0
    return broken


def duplicated_timestamps(bars: pd.DataFrame) -> pd.DataFrame:
    """Five bars of 10:00-10:05 sent twice, the second time with other values."""
    repeated = bars[between(bars, "10:00", "10:05")].copy()
    repeated[PRICES] *= 1.001
    return pd.concat([bars, repeated]).sort_values("ts", kind="stable").reset_index(drop=True)


Corruption = Callable[[pd.DataFrame], pd.DataFrame]
