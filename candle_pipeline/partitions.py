"""The day partitions every asset shares, and how a backfill splits them into runs.

One partition per calendar day from CANDLE_PARTITION_START; today's partition exists, so a
session can be fetched right after its close. A day partition holds every watched ticker's data
of that day: tickers are rows inside a partition, never a partition dimension. The definitions
are built from the settings when the code location loads (`definitions.defs`), never at import.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from candle_pipeline.settings import Settings, get_settings

DAILY_INTERVAL = "1d"
# Days one backfill run covers, unless CANDLE_BACKFILL_DAYS_PER_RUN says otherwise: a year of
# daily bars of the S&P 500 is ~130,000 rows, a week of its minute bars ~1.5 million, so the
# default follows the bar width the configured source delivers (it bounds a run's memory).
DAILY_BARS_DAYS_PER_RUN = 366
INTRADAY_BARS_DAYS_PER_RUN = 5


def day_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """A partition per day from `settings.partition_start` to today, both included."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.partition_start.isoformat(), end_offset=1
    )


def days_per_run(settings: Settings) -> int:
    """CANDLE_BACKFILL_DAYS_PER_RUN, else a year for sources of daily bars and a few days for
    sources of minute bars. A csv folder counts as daily bars: Lean folders hold decades of daily
    files and minute files of a few days (the bundled sample does); a folder of minute files for
    many tickers and months wants the setting."""
    if settings.backfill_days_per_run is not None:
        return settings.backfill_days_per_run
    daily = {
        "csv": True,
        "yahoo": settings.yahoo_interval == DAILY_INTERVAL,
        "synthetic": settings.synthetic_interval == DAILY_INTERVAL,
        "polygon": settings.polygon_interval == DAILY_INTERVAL,
        "ccxt": settings.ccxt_interval == DAILY_INTERVAL,
    }[settings.source]
    return DAILY_BARS_DAYS_PER_RUN if daily else INTRADAY_BARS_DAYS_PER_RUN


def backfill_policy(settings: Settings) -> dg.BackfillPolicy:
    """Runs of at most `days_per_run` consecutive days, every watched ticker of them in each."""
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=days_per_run(settings))


def day_key(day: date) -> str:
    return day.isoformat()


def days_between(first: date, last: date) -> list[date]:
    """Every calendar day from `first` to `last`, both included."""
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def days_of(window: dg.TimeWindow) -> list[date]:
    """The days of a run's partition time window (its end is exclusive)."""
    return days_between(window.start.date(), (window.end - timedelta(days=1)).date())


def today() -> date:
    """The last day partition: today in UTC (a test pins it with `dg.partition_loading_context`)."""
    return date.fromisoformat(day_partitions(get_settings()).get_last_partition_key())
