"""The orchestrator's floor: the project's asset graph with bodies that do nothing.

Same asset keys, partitions, backfill policies, dependencies (with the same partition mappings)
and executor as `candle_pipeline.definitions`, no IO manager and no data: a backfill of these assets
costs only what Dagster itself spends per run and per partition.
"""

import warnings

import dagster as dg

from candle_pipeline.definitions import EXECUTOR
from candle_pipeline.partitions import (
    DATE_DIMENSION,
    ticker_day_backfill_policy,
    ticker_day_partitions,
    timing_date_partitions,
)

warnings.filterwarnings("ignore", category=dg.BetaWarning)

TIMINGS_DEP = dg.AssetDep(
    "market_timings",
    partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name=DATE_DIMENSION
    ),
)


@dg.asset(partitions_def=timing_date_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def market_timings() -> None:
    """Nothing: the floor of a market_timings run."""


def _per_ticker(name: str, upstream: str | None) -> dg.AssetsDefinition:
    deps = [TIMINGS_DEP] + ([dg.AssetDep(upstream)] if upstream else [])

    @dg.asset(
        name=name,
        partitions_def=ticker_day_partitions,
        backfill_policy=ticker_day_backfill_policy(),
        deps=deps,
    )
    def _noop() -> None:
        """Nothing: the floor of a per-ticker run."""

    return _noop


raw_quotes = _per_ticker("raw_quotes", None)
validated_quotes = _per_ticker("validated_quotes", "raw_quotes")
candles = _per_ticker("candles", "validated_quotes")

defs = dg.Definitions(
    assets=[market_timings, raw_quotes, validated_quotes, candles], executor=EXECUTOR
)
