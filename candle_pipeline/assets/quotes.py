"""`raw_quotes` (as the provider returned them) and `validated_quotes` (flagged and tagged)."""

from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from candle_pipeline.assets.market_timings import GROUP, IO_MANAGER
from candle_pipeline.assets.metadata import add_partition_metadata
from candle_pipeline.assets.types import RAW_QUOTES_TYPE, VALIDATED_QUOTES_TYPE
from candle_pipeline.checks.quality import (
    QUALITY_SCORE_CHECK,
    VALIDATED_QUOTES,
    VALIDATED_QUOTES_CHECKS,
    partition_metadata,
    score_evaluations,
    warning_results,
)
from candle_pipeline.domain.quality import assess, validate_quotes
from candle_pipeline.domain.sessions import plan_fetches
from candle_pipeline.partitions import (
    DATE_DIMENSION,
    TickerDay,
    parse_ticker_days,
    ticker_day_backfill_policy,
    ticker_day_partitions,
)
from candle_pipeline.providers.yahoo import DROP_REASONS
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.settings import MARKET_API_POOL
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES

TIMINGS_INPUT = dg.AssetIn(
    key="market_timings",
    partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name=DATE_DIMENSION
    ),
)


def per_ticker_asset(**kwargs: object):
    """The decorator shared by every date x ticker asset."""
    return dg.asset(
        partitions_def=ticker_day_partitions,
        backfill_policy=ticker_day_backfill_policy(),
        group_name=GROUP,
        io_manager_key=IO_MANAGER,
        kinds={"pandas", "postgres"},
        **kwargs,
    )


def rows_by_partition(frame: pd.DataFrame) -> dict[TickerDay, int]:
    counts = frame.groupby(["trade_date", "ticker"]).size()
    return {TickerDay(day.date(), ticker): int(n) for (day, ticker), n in counts.items()}


@per_ticker_asset(
    ins={"market_timings": TIMINGS_INPUT}, pool=MARKET_API_POOL, dagster_type=RAW_QUOTES_TYPE
)
def raw_quotes(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    watchlist: WatchlistResource,
    warehouse: WarehouseResource,
    market_timings: pd.DataFrame,
) -> pd.DataFrame:
    """Bars exactly as the provider returned them, with `source` and `fetched_at`.

    Closed market days make no provider call and materialise empty, saying why. The dividends
    and splits the provider reports on the run's ticker-days replace theirs in
    `market.corporate_actions`, once every fetch has succeeded. Runs in the `market_api` pool.
    """
    ticker_days = parse_ticker_days(context.partition_keys)
    plan = plan_fetches(ticker_days, market_timings, watchlist.exchanges())
    fetched = market_data.fetch_all(plan.open_days)
    raw, actions, results = fetched.bars, fetched.actions, fetched.results
    action_partitions = [(td.trade_date, td.ticker) for td in ticker_days]
    actions_written = warehouse.run(
        lambda conn: replace_partitions(
            conn, TABLES["corporate_actions"], action_partitions, actions
        )
    )
    watchlist.record_provider_exchanges(
        {
            ticker: result.exchange_name
            for ticker, result in zip(plan.open_days, results, strict=True)
            if result.exchange_name
        }
    )
    rows = rows_by_partition(raw)
    by_partition = {}
    for ticker_day in ticker_days:
        reason = plan.skipped.get(ticker_day)
        count = rows.get(ticker_day, 0)
        status = "skipped" if reason else ("fetched" if count else "no data from provider")
        by_partition[ticker_day.key] = {"rows": count, "status": status, "reason": reason or status}
    add_partition_metadata(context, by_partition)
    empty_open_days = [td.key for td in ticker_days if td not in plan.skipped and td not in rows]
    if empty_open_days:
        context.log.warning(
            f"{market_data.source} returned no bars for {len(empty_open_days)} open "
            f"ticker-day(s), e.g. {', '.join(empty_open_days[:5])}"
        )
    dropped = Counter[str]()
    for result in results:
        dropped.update(result.dropped)
    context.add_output_metadata(
        {
            "provider": market_data.source,
            "provider_requests": sum(r.requests for r in results),
            "provider_retries": sum(r.retries for r in results),
            "throttled_seconds": round(sum(r.throttled_seconds for r in results), 3),
            "backoff_seconds": round(sum(r.backoff_seconds for r in results), 3),
            "closed_partitions": len(plan.skipped),
            "corporate_actions_written": actions_written,
            **{f"rows_dropped_{reason}": dropped.get(reason, 0) for reason in DROP_REASONS},
        }
    )
    return raw


@per_ticker_asset(
    ins={"market_timings": TIMINGS_INPUT},
    check_specs=VALIDATED_QUOTES_CHECKS,
    dagster_type=VALIDATED_QUOTES_TYPE,
)
def validated_quotes(
    context: dg.AssetExecutionContext,
    watchlist: WatchlistResource,
    quality: QualityResource,
    raw_quotes: pd.DataFrame,
    market_timings: pd.DataFrame,
) -> Iterator[dg.Output | dg.AssetCheckResult | dg.AssetCheckEvaluation]:
    """Every raw bar, tagged regular/pre/post from market_timings and flagged by quality rules.

    Each ticker-day gets a quality score (metadata `quality_score`, history in
    `market.quality_reports`) and the checks `quality_score`, `spikes`, `gaps` and `stale_runs`.
    Moves across the run's ex-dates are measured against closes adjusted by the splits and
    dividends `raw_quotes` stored in `market.corporate_actions`.
    """
    ticker_days = parse_ticker_days(context.partition_keys)
    rules = quality.rules()
    exchanges = watchlist.exchanges()
    first_day = min(td.trade_date for td in ticker_days)
    before = quality.previous_closes(sorted({td.ticker for td in ticker_days}), first_day)
    validation = validate_quotes(
        raw_quotes,
        market_timings,
        exchanges,
        rules,
        actions=quality.corporate_actions(ticker_days),
        previous_closes=before,
    )
    reports = assess(validation, market_timings, exchanges, ticker_days, rules)
    add_partition_metadata(context, partition_metadata(validation, reports, rules.threshold))
    yield dg.Output(validation.quotes)

    quality.write_reports(reports, context.run_id)
    selected = context.selected_asset_check_keys
    if QUALITY_SCORE_CHECK.key in selected:
        yield from score_evaluations(reports, rules.threshold)
        yield dg.Output(
            None,
            output_name=context.assets_def.get_output_name_for_asset_check_key(
                QUALITY_SCORE_CHECK.key
            ),
        )
    for name, result in warning_results(validation, reports, rules).items():
        if dg.AssetCheckKey(VALIDATED_QUOTES, name) in selected:
            yield result
