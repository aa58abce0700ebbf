"""Assembles the one `dagster.Definitions` of candle-pipeline: `defs`."""

from __future__ import annotations

import dagster as dg

from candle_pipeline.assets.candles import candles
from candle_pipeline.assets.market_timings import market_timings
from candle_pipeline.assets.quotes import raw_quotes, validated_quotes
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.sensors.new_tickers import new_tickers_sensor
from candle_pipeline.settings import get_settings

ASSETS = [market_timings, raw_quotes, validated_quotes, candles]
SENSORS = [new_tickers_sensor]
# A run's steps form a chain (timings -> raw -> validated -> candles) with nothing to run in
# parallel: steps execute in the run's own process instead of one new process per step, which
# would re-import pandas and Dagster for every step of every run (seconds each).
EXECUTOR = dg.in_process_executor

defs = dg.Definitions(
    assets=ASSETS,
    sensors=SENSORS,
    resources=build_resources(get_settings()),
    executor=EXECUTOR,
)
