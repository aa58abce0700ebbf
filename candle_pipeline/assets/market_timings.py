"""`market_timings`: per exchange and calendar day, whether it is open and its session in UTC."""

from datetime import timedelta

import dagster as dg
import pandas as pd

from candle_pipeline.domain import sessions
from candle_pipeline.partitions import timing_date_partitions
from candle_pipeline.resources.watchlist import WatchlistResource

GROUP = "market_data"
IO_MANAGER = "warehouse_io_manager"


@dg.asset(
    partitions_def=timing_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    io_manager_key=IO_MANAGER,
    kinds={"pandas", "postgres"},
)
def market_timings(context: dg.AssetExecutionContext, watchlist: WatchlistResource) -> pd.DataFrame:
    """Open or closed, regular session open/close (early closes, breaks) and expected bars.

    Covers every exchange in use: the default, CANDLE_EXCHANGES and the watch list's.
    """
    window = context.partition_time_window
    first_day = window.start.date()
    last_day = (window.end - timedelta(days=1)).date()
    mics = watchlist.exchanges_in_use()
    timings = sessions.market_timings(mics, first_day, last_day)
    context.add_output_metadata(
        {
            "exchanges": ", ".join(mics),
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "open_sessions": int(timings["is_open"].sum()),
            "early_closes": int(timings["early_close"].sum()),
            "exchange_calendars_version": sessions.calendar_version(),
        }
    )
    return timings
