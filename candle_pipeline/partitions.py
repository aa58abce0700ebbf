"""The partitions: calendar days for market timings, and date x ticker for per-ticker assets.

Keys of per-ticker assets look like `2013-10-07|SPY`; tickers are the dynamic partitions
named `tickers`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

import dagster as dg

from candle_pipeline.settings import TIMINGS_DAYS_AHEAD, USABLE_PARTITION_SPACE, get_settings

TICKERS_PARTITION_NAME = "tickers"
DATE_DIMENSION = "date"
TICKER_DIMENSION = "ticker"
KEY_SEPARATOR = "|"

_settings = get_settings()

# end_offset=1: today's partition exists, so a schedule can fetch a session right after its close.
trading_date_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.partition_start.isoformat(), end_offset=1
)
timing_date_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.timings_start.isoformat(), end_offset=TIMINGS_DAYS_AHEAD
)
ticker_partitions = dg.DynamicPartitionsDefinition(name=TICKERS_PARTITION_NAME)
ticker_day_partitions = dg.MultiPartitionsDefinition(
    {DATE_DIMENSION: trading_date_partitions, TICKER_DIMENSION: ticker_partitions}
)


class TickerDay(NamedTuple):
    """One per-ticker partition."""

    trade_date: date
    ticker: str

    @property
    def key(self) -> str:
        return f"{self.trade_date.isoformat()}{KEY_SEPARATOR}{self.ticker}"


def ticker_day_backfill_policy() -> dg.BackfillPolicy:
    """Single runs, or runs of at most CANDLE_BACKFILL_PARTITIONS_PER_RUN ticker-days.

    Either way Dagster first splits a backfill into ranges one key wide in one dimension (one
    date x many tickers, or one ticker x many dates, whichever is fewer), then chunks each range.
    """
    chunk = _settings.backfill_partitions_per_run
    if chunk is None:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=chunk)


def parse_ticker_day(key: str) -> TickerDay:
    """`2013-10-07|SPY` -> TickerDay(date(2013, 10, 7), 'SPY')."""
    day, separator, ticker = str(key).partition(KEY_SEPARATOR)
    if not separator or not ticker:
        raise ValueError(f"{key!r} is not a date|ticker partition key")
    return TickerDay(date.fromisoformat(day), ticker)


def parse_ticker_days(keys: Iterable[str]) -> list[TickerDay]:
    return [parse_ticker_day(key) for key in keys]


def partition_space_warning(ticker_count: int) -> str | None:
    """Why `ticker_count` tickers make the per-ticker assets' partition space too large for
    Dagster to stay usable, or None when they do not."""
    days = trading_date_partitions.get_num_partitions()
    space = days * ticker_count
    if space <= USABLE_PARTITION_SPACE:
        return None
    return (
        f"{ticker_count} tickers x {days} days since {_settings.partition_start} = {space:,} "
        f"partitions per per-ticker asset, above the ~{USABLE_PARTITION_SPACE:,} up to which the "
        "UI's partition status and backfill planning stay fast (docs/benchmarks.md): set "
        "CANDLE_PARTITION_START later or watch fewer tickers"
    )
