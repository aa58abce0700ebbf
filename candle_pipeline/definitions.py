"""Assembles the one `dagster.Definitions` of candle-pipeline: `defs`."""

import dagster as dg

from candle_pipeline.assets.market_data import market_data
from candle_pipeline.assets.market_timings import market_timings
from candle_pipeline.checks.freshness import candles_freshness, freshness_schedule
from candle_pipeline.jobs import JOBS
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.run_logs import console_loggers
from candle_pipeline.schedules import build_schedules, scheduled_exchanges, watchlist_listings
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline.sensors.calendar_overrides import calendar_overrides_sensor
from candle_pipeline.sensors.new_tickers import new_tickers_sensor
from candle_pipeline.sensors.retries import retry_sensor
from candle_pipeline.sensors.settings import settings_sensor
from candle_pipeline.settings import get_operations_settings, get_settings

ASSETS = [market_timings, market_data]
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
SCHEDULES = [
    *build_schedules(
        scheduled_exchanges(get_settings()), watchlist_listings, get_operations_settings()
    ),
    freshness_schedule(get_operations_settings()),
]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=build_resources(get_settings()),
    executor=EXECUTOR,
    loggers=console_loggers(),
)
