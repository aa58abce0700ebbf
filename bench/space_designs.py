"""Partition designs compared at the same scale by the partition-space benchmark.

`calendar-days` is the project's own `date x ticker` design (`candle_pipeline.partitions`);
`trading-days` keeps only the default exchange's sessions (weekday cron, holidays excluded);
`weeks` partitions each ticker by ISO week (Monday to Sunday). The asset here is a stand-in for
`raw_quotes` with the design's partitions and the project's backfill policy; the benchmark only
asks Dagster about partitions, never runs it. Selected by CANDLE_BENCH_SPACE_DESIGN.
"""

import os
from datetime import date, datetime

import dagster as dg
import exchange_calendars as xcals
import pandas as pd

from candle_pipeline.definitions import EXECUTOR
from candle_pipeline.partitions import (
    DATE_DIMENSION,
    TICKER_DIMENSION,
    ticker_day_backfill_policy,
    ticker_partitions,
    trading_date_partitions,
)
from candle_pipeline.settings import get_settings

ENV_DESIGN = "CANDLE_BENCH_SPACE_DESIGN"
DESIGNS = ("calendar-days", "trading-days", "weeks")
WEEKDAYS_AT_MIDNIGHT = "0 0 * * 1-5"
DATE_FORMAT = "%Y-%m-%d"
MONDAY_OFFSET = 1


def date_partitions(design: str) -> dg.PartitionsDefinition:
    start = get_settings().partition_start
    if design == "calendar-days":
        return trading_date_partitions
    if design == "trading-days":
        calendar = xcals.get_calendar(get_settings().default_exchange)
        weekdays = pd.bdate_range(start, date.today())
        holidays = [
            datetime(day.year, day.month, day.day)
            for day in weekdays
            if not calendar.is_session(day)
        ]
        return dg.TimeWindowPartitionsDefinition(
            start=start.isoformat(),
            cron_schedule=WEEKDAYS_AT_MIDNIGHT,
            fmt=DATE_FORMAT,
            exclusions=holidays,
        )
    if design == "weeks":
        return dg.WeeklyPartitionsDefinition(start_date=start.isoformat(), day_offset=MONDAY_OFFSET)
    raise ValueError(f"{ENV_DESIGN}: choose one of {', '.join(DESIGNS)}")


DESIGN = os.environ.get(ENV_DESIGN, DESIGNS[0])
partitions = dg.MultiPartitionsDefinition(
    {DATE_DIMENSION: date_partitions(DESIGN), TICKER_DIMENSION: ticker_partitions}
)


@dg.asset(
    name="raw_quotes", partitions_def=partitions, backfill_policy=ticker_day_backfill_policy()
)
def raw_quotes() -> None:
    """A stand-in: the benchmark plans backfills of it but never runs it."""


defs = dg.Definitions(assets=[raw_quotes], executor=EXECUTOR)
