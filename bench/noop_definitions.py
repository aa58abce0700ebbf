"""The orchestrator's floor: the project's asset graph with bodies that do nothing.

Same asset keys, day partitions, backfill policy, dependencies, asset checks and executor as
`candle_pipeline.definitions`, an IO manager that stores nothing and no data: a backfill of these
assets costs only what Dagster itself spends per run, per day partition and per check
evaluation. Like the real `market_data`, the no-op one attaches each day's metadata to each
selected asset (the same number of entries), reports `quality_score` and `coverage` once per day
and each warning check once per run: Dagster stores each evaluation on its own, so they are part
of the floor.

Two environment switches (read at import, in the benchmark's own process, like the settings)
take parts away to measure their share: CANDLE_BENCH_CHECKS=0 defines no checks (a backfill
selects every check of the assets it materialises), CANDLE_BENCH_METADATA=0 attaches no day
metadata.
"""

import os
import warnings
from collections.abc import Iterator

import dagster as dg

from candle_pipeline.assets.market_data import CHAIN
from candle_pipeline.checks.quality import WARNING_CHECKS, check_specs
from candle_pipeline.definitions import EXECUTOR
from candle_pipeline.partitions import backfill_policy, day_partitions
from candle_pipeline.settings import get_settings

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

MARKET_TIMINGS = dg.AssetKey("market_timings")
# The real definitions' partitions and backfill policy, from the benchmark process's settings.
DAYS = day_partitions(get_settings())
POLICY = backfill_policy(get_settings())
# As many entries as the real day metadata: tickers by status, scores, rows written.
DAY_METADATA = {
    "tickers_expected": 0,
    "tickers_complete": 0,
    "tickers_blocked": 0,
    "tickers_no_data": 0,
    "tickers_failed": 0,
    "tickers_retry_later": 0,
    "tickers_closed": 0,
    "tickers_not_fetched": 0,
    "quality_score_min": 1.0,
    "quality_score_mean": 1.0,
    "rows_written": 0,
}
RUN_CHECK_KEYS = {spec.key for spec in WARNING_CHECKS}
ENV_CHECKS = "CANDLE_BENCH_CHECKS"
ENV_METADATA = "CANDLE_BENCH_METADATA"
SWITCHED_OFF = "0"


def enabled(variable: str) -> bool:
    return os.environ.get(variable, "") != SWITCHED_OFF


class NullIOManager(dg.ConfigurableIOManager):
    """Stores nothing, loads None: the storage of the outputs is not what is measured."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        """Nothing."""

    def load_input(self, context: dg.InputContext) -> None:
        """Nothing."""


@dg.asset(
    key=MARKET_TIMINGS,
    partitions_def=DAYS,
    backfill_policy=POLICY,
    io_manager_key="noop_io_manager",
)
def market_timings() -> None:
    """Nothing: the floor of a market_timings run."""


@dg.multi_asset(
    name="market_data",
    outs={
        key.path[-1]: dg.AssetOut(is_required=False, io_manager_key="noop_io_manager")
        for key in CHAIN
    },
    deps=[MARKET_TIMINGS],
    internal_asset_deps={
        "raw_quotes": {MARKET_TIMINGS},
        "validated_quotes": {CHAIN[0], MARKET_TIMINGS},
        "candles": {CHAIN[1], MARKET_TIMINGS},
    },
    check_specs=check_specs(DAYS) if enabled(ENV_CHECKS) else [],
    partitions_def=DAYS,
    backfill_policy=POLICY,
    can_subset=True,
)
def market_data(
    context: dg.AssetExecutionContext,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation | dg.AssetCheckResult]:
    """Nothing but the events the real step emits."""
    selected = [key for key in CHAIN if key in context.selected_asset_keys]
    checks = context.selected_asset_check_keys
    if enabled(ENV_METADATA):
        for day in context.partition_keys:
            for key in selected:
                context.add_asset_metadata(DAY_METADATA, asset_key=key, partition_key=day)
    for key in selected:
        yield dg.Output(None, output_name=key.path[-1])
    for day in context.partition_keys:
        for check in sorted(checks - RUN_CHECK_KEYS, key=str):
            yield dg.AssetCheckEvaluation(
                asset_key=check.asset_key, check_name=check.name, passed=True, partition=day
            )
    for check in sorted(checks & RUN_CHECK_KEYS, key=str):
        yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)


defs = dg.Definitions(
    assets=[market_timings, market_data],
    resources={"noop_io_manager": NullIOManager()},
    executor=EXECUTOR,
)
