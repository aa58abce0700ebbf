"""Reading the warehouse from Python: candles and raw bars as tidy DataFrames, raw or adjusted as
of a chosen day.

    from candle_pipeline import read
    read.candles(["AAPL"], "1d", "2014-06-02", "2014-06-13", adjust="splits", as_of="2021-04-01")

One row per ticker and bar, ordered by ticker and `ts` (the bar start, UTC): `ticker`,
`trade_date`, `interval`, `ts`, `open`, `high`, `low`, `close`, `volume` (and `bar_count` for
candles). `adjust=None` gives the prices and volumes that traded; `"splits"` split-adjusted ones;
`"all"` total-return ones (splits and cash dividends). `as_of` (default: every action known)
ignores the actions that had not happened or had not been seen by the warehouse on that day, so
a study read as of a past day reads the same numbers after later splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from candle_pipeline.domain.adjustments import ADJUSTMENTS, adjust, as_of
from candle_pipeline.domain.bars import INTERVAL_SECONDS
from candle_pipeline.domain.candles import CANDLE_INTERVALS
from candle_pipeline.local_env import database_urls
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import get_settings
from candle_pipeline.warehouse.partition_store import load_range
from candle_pipeline.warehouse.tables import TABLES, PartitionedTable

DateLike = date | str
DAILY = "1d"
# Decimals of the prices `side_by_side` shows.
PRICE_DECIMALS = 4


class ReadError(ValueError):
    """Arguments that cannot be read; the message says which and why, in one line."""


def candles(
    tickers: Sequence[str] | str,
    interval: str,
    start: DateLike,
    end: DateLike,
    *,
    adjust: str | None = None,
    as_of: DateLike | None = None,
    database_url: str | None = None,
) -> pd.DataFrame:
    """The candles of `tickers` at `interval` on the trade dates `start` to `end` (inclusive)."""
    if interval not in CANDLE_INTERVALS:
        raise ReadError(
            f"unknown candle interval {interval!r}: choose one of {', '.join(CANDLE_INTERVALS)}"
        )
    return _read(
        TABLES["candles"],
        tickers=tickers,
        interval=interval,
        start=start,
        end=end,
        how=adjust,
        day=as_of,
        database_url=database_url,
    )


def bars(
    tickers: Sequence[str] | str,
    interval: str,
    start: DateLike,
    end: DateLike,
    *,
    adjust: str | None = None,
    as_of: DateLike | None = None,
    database_url: str | None = None,
) -> pd.DataFrame:
    """The raw quotes (every bar the provider returned, pre- and post-market included) of
    `tickers` at `interval` on the trade dates `start` to `end` (inclusive)."""
    if interval not in INTERVAL_SECONDS:
        raise ReadError(
            f"unknown bar interval {interval!r}: choose one of {', '.join(INTERVAL_SECONDS)}"
        )
    return _read(
        TABLES["raw_quotes"],
        tickers=tickers,
        interval=interval,
        start=start,
        end=end,
        how=adjust,
        day=as_of,
        database_url=database_url,
    )


def side_by_side(
    ticker: str, start: DateLike, end: DateLike, *, database_url: str | None = None
) -> pd.DataFrame:
    """One ticker's daily candles raw, split-adjusted and total-return, one row per day: the
    three series a study chooses between."""
    kinds = {"raw": None, "split-adjusted": ADJUSTMENTS[0], "total-return": ADJUSTMENTS[1]}
    frames = {
        name: candles(ticker, DAILY, start, end, adjust=how, database_url=database_url)
        for name, how in kinds.items()
    }
    table = pd.DataFrame({"trade_date": frames["raw"]["trade_date"].dt.date})
    for name, frame in frames.items():
        table[f"{name} close"] = frame["close"].round(PRICE_DECIMALS)
    for name in ("raw", "split-adjusted"):
        table[f"{name} volume"] = frames[name]["volume"].round().astype("int64")
    return table


def _read(
    spec: PartitionedTable,
    *,
    tickers: Sequence[str] | str,
    interval: str,
    start: DateLike,
    end: DateLike,
    how: str | None,
    day: DateLike | None,
    database_url: str | None,
) -> pd.DataFrame:
    names = [tickers] if isinstance(tickers, str) else list(tickers)
    first, last = _day(start, "start"), _day(end, "end")
    if last < first:
        raise ReadError(f"end {last} is before start {first}")
    if how is not None and how not in ADJUSTMENTS:
        raise ReadError(f"adjust must be None, {' or '.join(map(repr, ADJUSTMENTS))}, not {how!r}")
    seen_on = None if day is None else _day(day, "as_of")
    if not names:
        raise ReadError("no ticker asked for")
    warehouse = WarehouseResource(database_url=database_url or database_urls(get_settings())[0])
    watched = {entry.ticker for entry in warehouse.watchlist()}
    unknown = sorted(set(names) - watched)
    if unknown:
        raise ReadError(
            f"unknown ticker(s) {', '.join(unknown)}: not on the watch list "
            "(`candle-pipeline tickers list` shows it)"
        )
    rows = warehouse.run(
        lambda conn: load_range(conn, spec, names, interval=interval, first=first, last=last)
    )
    frame = rows.loc[:, [c for c in rows.columns if c not in ("source", "fetched_at")]]
    if how is None or frame.empty:
        return frame
    factors = warehouse.adjustment_factors(names)
    return adjust(frame, as_of(factors, seen_on), how)


def _day(value: DateLike, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ReadError(f"{name} must be a date (YYYY-MM-DD), not {value!r}") from None
