"""The orchestrator's floor: the project's asset graph with bodies that do nothing.

Same asset keys, partitions, backfill policies, dependencies (with the same partition mappings),
asset checks and executor as `candle_pipeline.definitions`, no IO manager and no data: a backfill
of these assets costs only what Dagster itself spends per run, per partition and per check
evaluation. Like the real `validated_quotes`, the no-op one reports its blocking `quality_score`
check once per ticker-day (Dagster stores each evaluation on its own: it cannot batch them) and
each warning check once per run.
"""

import warnings
from collections.abc import Iterator

import dagster as dg

from candle_pipeline.checks.quality import (
    QUALITY_SCORE_CHECK,
    VALIDATED_QUOTES,
    VALIDATED_QUOTES_CHECKS,
    WARNING_CHECKS,
)
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
candles = _per_ticker("candles", "validated_quotes")


@dg.asset(
    partitions_def=ticker_day_partitions,
    backfill_policy=ticker_day_backfill_policy(),
    deps=[TIMINGS_DEP, dg.AssetDep("raw_quotes")],
    check_specs=VALIDATED_QUOTES_CHECKS,
    dagster_type=dg.Nothing,
)
def validated_quotes(
    context: dg.AssetExecutionContext,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation | dg.AssetCheckResult]:
    """Nothing but the check events the real asset emits: one quality_score evaluation per
    ticker-day, one result per warning check."""
    yield dg.Output(None)
    for key in context.partition_keys:
        yield dg.AssetCheckEvaluation(
            asset_key=VALIDATED_QUOTES,
            check_name=QUALITY_SCORE_CHECK.name,
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            blocking=False,
            partition=key,
        )
    yield dg.Output(
        None,
        output_name=context.assets_def.get_output_name_for_asset_check_key(QUALITY_SCORE_CHECK.key),
    )
    for check in WARNING_CHECKS:
        yield dg.AssetCheckResult(check_name=check.name, passed=True)


defs = dg.Definitions(
    assets=[market_timings, raw_quotes, validated_quotes, candles], executor=EXECUTOR
)
