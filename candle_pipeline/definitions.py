"""Assembles the one `dagster.Definitions` of candle-pipeline: `defs`."""

from __future__ import annotations

import dagster as dg

from candle_pipeline.assets.candles import candles
from candle_pipeline.assets.market_timings import market_timings
from candle_pipeline.assets.quotes import raw_quotes, validated_quotes
from candle_pipeline.jobs import JOBS
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.schedules import build_schedules, exchanges_in_use, registered_listings
from candle_pipeline.settings import get_operations_settings, get_settings

ASSETS = [market_timings, raw_quotes, validated_quotes, candles]

RESOURCES = build_resources(get_settings())
EXCHANGES = RESOURCES["market_data"].exchanges()
SCHEDULES = build_schedules(
    exchanges_in_use(EXCHANGES), registered_listings(EXCHANGES), get_operations_settings()
)

defs = dg.Definitions(assets=ASSETS, jobs=JOBS, schedules=SCHEDULES, resources=RESOURCES)
