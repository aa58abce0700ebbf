"""Assembles the one `dagster.Definitions` of candle-pipeline: `defs`.

`defs` is a `@dg.definitions` function: Dagster calls it when the code location loads, so the
settings are read then (and validated), never when a module is imported.
"""

import dagster as dg

from candle_pipeline.assets.market_data import build_market_data
from candle_pipeline.assets.market_timings import build_market_timings
from candle_pipeline.checks.freshness import candles_freshness, freshness_schedule
from candle_pipeline.jobs import JOBS
from candle_pipeline.partitions import backfill_policy, day_partitions
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.run_logs import console_loggers
from candle_pipeline.schedules import build_schedules, scheduled_exchanges, watchlist_listings
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline.sensors.calendar_overrides import calendar_overrides_sensor
from candle_pipeline.sensors.new_tickers import new_tickers_sensor
from candle_pipeline.sensors.retries import retry_sensor
from candle_pipeline.sensors.settings import settings_sensor
from candle_pipeline.settings import (
    OperationsSettings,
    Settings,
    get_operations_settings,
    get_settings,
)

ASSET_CHECKS = [candles_freshness]
SENSORS = [
    new_tickers_sensor,
    retry_sensor,
    quality_alerts_sensor,
    settings_sensor,
    calendar_overrides_sensor,
]
# A run is two steps in a chain (timings -> market data) with nothing to run in parallel: they
# execute in the run's own process instead of one new process per step, which would re-import
# pandas and Dagster for every step of every run (seconds each).
EXECUTOR = dg.in_process_executor


def build_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """`market_timings` and `market_data` on the day partitions and backfill policy of
    `settings`."""
    partitions, policy = day_partitions(settings), backfill_policy(settings)
    return [build_market_timings(partitions, policy), build_market_data(partitions, policy)]


def build_all_schedules(
    settings: Settings, operations: OperationsSettings
) -> list[dg.ScheduleDefinition]:
    """The after-close, catch-up and intraday schedules, and the freshness check's."""
    return [
        *build_schedules(scheduled_exchanges(settings), watchlist_listings, operations),
        freshness_schedule(operations),
    ]


@dg.definitions
def defs() -> dg.Definitions:
    settings, operations = get_settings(), get_operations_settings()
    return dg.Definitions(
        assets=build_assets(settings),
        asset_checks=ASSET_CHECKS,
        jobs=JOBS,
        schedules=build_all_schedules(settings, operations),
        sensors=SENSORS,
        resources=build_resources(settings),
        executor=EXECUTOR,
        loggers=console_loggers(),
    )
