"""`market_timings`: per exchange and calendar day, whether it is open and its session in UTC."""

import dagster as dg
import pandas as pd

from candle_pipeline.domain import sessions
from candle_pipeline.partitions import days_of
from candle_pipeline.resources.warehouse import WarehouseResource

GROUP = "market_data"
IO_MANAGER = "warehouse_io_manager"
MARKET_TIMINGS = dg.AssetKey("market_timings")


def market_timings(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> pd.DataFrame:
    """Open or closed, regular session open/close (early closes, breaks) and expected bars.

    Covers every exchange in use: the default, CANDLE_EXCHANGES and the watch list's; the
    calendar corrections in force (`candle-pipeline calendar`) are laid over exchange_calendars.
    """
    days = days_of(context.partition_time_window)
    first_day, last_day = days[0], days[-1]
    mics = warehouse.exchanges_in_use()
    overrides = warehouse.calendar_overrides_frame(mics, first_day, last_day)
    timings = sessions.market_timings(mics, first_day, last_day, overrides)
    context.add_output_metadata(
        {
            "exchanges": ", ".join(mics),
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "open_sessions": int(timings["is_open"].sum()),
            "early_closes": int(timings["early_close"].sum()),
            "exchange_calendars_version": sessions.calendar_version(),
            "calendar_corrections": len(overrides),
        }
    )
    return timings


def build_market_timings(
    partitions: dg.PartitionsDefinition, policy: dg.BackfillPolicy
) -> dg.AssetsDefinition:
    """The `market_timings` asset on the day partitions and backfill policy of the settings."""
    return dg.asset(
        name="market_timings",
        partitions_def=partitions,
        backfill_policy=policy,
        group_name=GROUP,
        io_manager_key=IO_MANAGER,
        kinds={"pandas", "postgres"},
    )(market_timings)
