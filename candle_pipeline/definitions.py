"""Assembles the one `dagster.Definitions` of candle-pipeline: `defs`."""

from __future__ import annotations

import dagster as dg

from candle_pipeline.assets.candles import candles
from candle_pipeline.assets.market_timings import market_timings
from candle_pipeline.assets.quotes import raw_quotes, validated_quotes
from candle_pipeline.checks.freshness import candles_freshness, freshness_schedule
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline.sensors.new_tickers import new_tickers_sensor
from candle_pipeline.settings import get_settings

ASSETS = [market_timings, raw_quotes, validated_quotes, candles]
SENSORS = [new_tickers_sensor, quality_alerts_sensor]
ASSET_CHECKS = [candles_freshness]
SCHEDULES = [freshness_schedule]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=build_resources(get_settings()),
)
