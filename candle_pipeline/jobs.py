"""The job schedules and sensors launch: market timings and the market data of a range of days."""

import dagster as dg

from candle_pipeline.checks.crosscheck import crosscheck_job
from candle_pipeline.runs import ALL_ASSETS, MARKET_DATA_JOB

market_data_job = dg.define_asset_job(
    MARKET_DATA_JOB,
    selection=dg.AssetSelection.assets(*ALL_ASSETS),
    description="market_timings, then raw_quotes -> validated_quotes -> candles, for a range of "
    "days (run config of market_data: tickers, refetch).",
)

JOBS = [market_data_job, crosscheck_job]
