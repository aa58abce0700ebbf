"""Partitioned asset jobs: what schedules launch and what a backfill of one kind of asset runs."""

import dagster as dg

from candle_pipeline.partitions import ticker_day_partitions, timing_date_partitions
from candle_pipeline.runs import PER_TICKER_ASSETS, TIMINGS_ASSET

market_timings_job = dg.define_asset_job(
    "market_timings_job",
    selection=dg.AssetSelection.assets(TIMINGS_ASSET),
    partitions_def=timing_date_partitions,
    description="market_timings for a range of calendar days.",
)

ticker_days_job = dg.define_asset_job(
    "ticker_days_job",
    selection=dg.AssetSelection.assets(*PER_TICKER_ASSETS),
    partitions_def=ticker_day_partitions,
    description="raw_quotes -> validated_quotes -> candles for a rectangle of days x tickers.",
)

JOBS = [market_timings_job, ticker_days_job]
