"""A no-op stand-in of the day-partition design, for the instance-storage benchmark.

The new graph's shape with bodies that do no work: `market_timings` and ONE `multi_asset`
`market_data` (outputs `raw_quotes`, `validated_quotes`, `candles`; can_subset, every output
optional) on one `DailyPartitionsDefinition` from 2000-01-01 (today's partition included), the
backfill policy `multi_run(365)`, an IO manager that stores nothing, and the five day-partitioned
checks. Per day of its run, `market_data` reports what the real step will report: ~8 numbers of
metadata per asset through `context.add_asset_metadata(partition_key=day)`, and one
`AssetCheckEvaluation(partition=day)` per selected check. So a backfill of these assets costs what
Dagster itself spends per run and per day partition: events, their storage, and the daemon.

Two environment switches (read at import: the code location of a benchmark process) take parts
away to measure their share: CANDLE_BENCH_STORAGE_CHECKS=0 defines no checks (a backfill selects
every check of the assets it materialises), CANDLE_BENCH_STORAGE_METADATA=0 adds no metadata.
(This module defines assets: no `from __future__ import annotations`.)
"""

import os
import warnings
from collections.abc import Iterator

import dagster as dg

# Backfill policies and partitioned check specs are beta/preview in Dagster 1.13; the design
# uses both.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

ENV_CHECKS = "CANDLE_BENCH_STORAGE_CHECKS"
ENV_METADATA = "CANDLE_BENCH_STORAGE_METADATA"
SWITCHED_OFF = "0"
PARTITION_START = "2000-01-01"
# The design's default for daily bars (CANDLE_BACKFILL_DAYS_PER_RUN).
DAYS_PER_RUN = 365

MARKET_TIMINGS = dg.AssetKey("market_timings")
RAW_QUOTES = dg.AssetKey("raw_quotes")
VALIDATED_QUOTES = dg.AssetKey("validated_quotes")
CANDLES = dg.AssetKey("candles")
MARKET_DATA_ASSETS = (RAW_QUOTES, VALIDATED_QUOTES, CANDLES)

days = dg.DailyPartitionsDefinition(start_date=PARTITION_START, end_offset=1)
backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN)

# (asset, check) pairs of the design; all partitioned by the same days.
CHECKS = (
    (VALIDATED_QUOTES, "quality_score"),
    (VALIDATED_QUOTES, "spikes"),
    (VALIDATED_QUOTES, "gaps"),
    (VALIDATED_QUOTES, "stale_runs"),
    (RAW_QUOTES, "coverage"),
)
# A day's materialisation metadata: the design's ~8 numbers (tickers expected, complete, failed,
# blocked, no_data, retry_later, min and mean quality score), constant here.
DAY_METADATA = {
    "tickers_expected": 523,
    "complete": 520,
    "failed": 1,
    "blocked": 1,
    "no_data": 1,
    "retry_later": 0,
    "min_quality_score": 0.91,
    "mean_quality_score": 0.998,
}
# A check evaluation's metadata: the score, and how many ticker-days it is about.
CHECK_METADATA = {"quality_score": 0.91, "ticker_days": 523}


def enabled(variable: str) -> bool:
    return os.environ.get(variable, "") != SWITCHED_OFF


class NullIOManager(dg.ConfigurableIOManager):
    """Stores nothing, loads None: the storage of the outputs is not what is measured."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        """Nothing."""

    def load_input(self, context: dg.InputContext) -> None:
        """Nothing."""


@dg.asset(partitions_def=days, backfill_policy=backfill_policy)
def market_timings() -> None:
    """Nothing: the bookkeeping of a market_timings run."""


check_specs = (
    [dg.AssetCheckSpec(name, asset=asset, partitions_def=days) for asset, name in CHECKS]
    if enabled(ENV_CHECKS)
    else []
)
add_metadata = enabled(ENV_METADATA)


@dg.multi_asset(
    name="market_data",
    outs={key.path[-1]: dg.AssetOut(is_required=False) for key in MARKET_DATA_ASSETS},
    ins={"market_timings": dg.AssetIn(MARKET_TIMINGS)},
    partitions_def=days,
    backfill_policy=backfill_policy,
    check_specs=check_specs,
    can_subset=True,
)
def market_data(
    context: dg.AssetExecutionContext, market_timings: object
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Per day: the metadata of each selected asset and one evaluation per selected check; then
    the outputs (checks' first: an evaluation per day is reported above, the check's own output
    only marks it done)."""
    selected_assets = [key for key in MARKET_DATA_ASSETS if key in context.selected_asset_keys]
    selected_checks = sorted(context.selected_asset_check_keys, key=str)
    for day in context.partition_keys:
        if add_metadata:
            for asset_key in selected_assets:
                context.add_asset_metadata(DAY_METADATA, asset_key=asset_key, partition_key=day)
        for check_key in selected_checks:
            yield dg.AssetCheckEvaluation(
                asset_key=check_key.asset_key,
                check_name=check_key.name,
                passed=True,
                partition=day,
                metadata=CHECK_METADATA,
            )
    for check_key in selected_checks:
        yield dg.Output(
            None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
        )
    for asset_key in selected_assets:
        yield dg.Output(
            None, output_name=context.assets_def.get_output_name_for_asset_key(asset_key)
        )


defs = dg.Definitions(
    assets=[market_timings, market_data],
    resources={"io_manager": NullIOManager()},
    executor=dg.in_process_executor,
)
