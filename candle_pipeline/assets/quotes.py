"""`raw_quotes` (as the provider returned them) and `validated_quotes` (flagged and tagged)."""

import dagster as dg
import pandas as pd

from candle_pipeline.assets.market_timings import GROUP, IO_MANAGER
from candle_pipeline.assets.metadata import add_partition_metadata
from candle_pipeline.domain.bars import RAW_COLUMNS, empty_bars
from candle_pipeline.domain.quality import quality_report, validate_quotes
from candle_pipeline.domain.sessions import plan_fetches
from candle_pipeline.partitions import (
    DATE_DIMENSION,
    TickerDay,
    parse_ticker_days,
    ticker_day_backfill_policy,
    ticker_day_partitions,
)
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.watchlist import WatchlistResource

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


@per_ticker_asset(ins={"market_timings": TIMINGS_INPUT})
def raw_quotes(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    watchlist: WatchlistResource,
    market_timings: pd.DataFrame,
) -> pd.DataFrame:
    """Bars exactly as the provider returned them, with `source` and `fetched_at`.

    Closed market days make no provider call and materialise empty, saying why.
    """
    ticker_days = parse_ticker_days(context.partition_keys)
    plan = plan_fetches(ticker_days, market_timings, watchlist.exchanges())
    frames = []
    requests = 0
    for ticker, days in plan.open_days.items():
        result = market_data.fetch(ticker, days)
        frames.append(result.bars)
        requests += result.requests
    raw = pd.concat(frames, ignore_index=True) if frames else empty_bars(RAW_COLUMNS)
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
    context.add_output_metadata(
        {
            "provider": market_data.source,
            "provider_requests": requests,
            "closed_partitions": len(plan.skipped),
        }
    )
    return raw


@per_ticker_asset(ins={"market_timings": TIMINGS_INPUT})
def validated_quotes(
    context: dg.AssetExecutionContext,
    watchlist: WatchlistResource,
    raw_quotes: pd.DataFrame,
    market_timings: pd.DataFrame,
) -> pd.DataFrame:
    """Every raw bar, tagged regular/pre/post from market_timings and flagged by quality rules."""
    validated = validate_quotes(raw_quotes, market_timings, watchlist.exchanges())
    reports = {
        TickerDay(day.date(), ticker): quality_report(group)
        for (day, ticker), group in validated.groupby(["trade_date", "ticker"])
    }
    empty = quality_report(validated.iloc[0:0])
    add_partition_metadata(
        context,
        {
            ticker_day.key: reports.get(ticker_day, empty).as_metadata()
            for ticker_day in parse_ticker_days(context.partition_keys)
        },
    )
    return validated
