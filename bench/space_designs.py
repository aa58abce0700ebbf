"""The baseline of the partition-space benchmark: the previous release's `date x ticker` design.

Every per-ticker asset was partitioned by calendar day x ticker (a `MultiPartitionsDefinition` of
daily partitions and the dynamic partitions `tickers`), with single-run backfills. The asset
here is a stand-in for that `raw_quotes`: the benchmark only asks Dagster about its partitions,
never runs it.
"""

import dagster as dg

from candle_pipeline.definitions import EXECUTOR
from candle_pipeline.partitions import day_partitions
from candle_pipeline.settings import get_settings

TICKERS_PARTITION_NAME = "tickers"
DATE_DIMENSION = "date"
TICKER_DIMENSION = "ticker"
KEY_SEPARATOR = "|"

ticker_partitions = dg.DynamicPartitionsDefinition(name=TICKERS_PARTITION_NAME)
partitions = dg.MultiPartitionsDefinition(
    {DATE_DIMENSION: day_partitions(get_settings()), TICKER_DIMENSION: ticker_partitions}
)


def ticker_day_key(day_key: str, ticker: str) -> str:
    """`2013-10-07|SPY`: dimensions in name order, as Dagster joins them."""
    return f"{day_key}{KEY_SEPARATOR}{ticker}"


@dg.asset(
    name="raw_quotes", partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run()
)
def raw_quotes() -> None:
    """A stand-in: the benchmark plans backfills of it but never runs it."""


defs = dg.Definitions(assets=[raw_quotes], executor=EXECUTOR)
