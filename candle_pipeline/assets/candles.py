"""`candles`: OHLCV aggregates of each ticker-day's valid regular-session bars."""

import dagster as dg
import pandas as pd

from candle_pipeline.assets.metadata import add_partition_metadata
from candle_pipeline.assets.quotes import TIMINGS_INPUT, per_ticker_asset, rows_by_partition
from candle_pipeline.domain.candles import aggregate
from candle_pipeline.domain.sessions import SESSION_REGULAR, attach_sessions
from candle_pipeline.partitions import parse_ticker_days
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.settings import CANDLE_INTERVALS


@per_ticker_asset(ins={"market_timings": TIMINGS_INPUT})
def candles(
    context: dg.AssetExecutionContext,
    watchlist: WatchlistResource,
    validated_quotes: pd.DataFrame,
    market_timings: pd.DataFrame,
) -> pd.DataFrame:
    """5m, 15m, 30m, 1h and 1d candles, bucket start in UTC, anchored at the session open."""
    usable = validated_quotes[
        (validated_quotes["session"] == SESSION_REGULAR) & validated_quotes["is_valid"]
    ]
    with_sessions = attach_sessions(usable, market_timings, watchlist.exchanges())
    result = aggregate(with_sessions, CANDLE_INTERVALS)
    rows = rows_by_partition(result)
    add_partition_metadata(
        context,
        {td.key: {"rows": rows.get(td, 0)} for td in parse_ticker_days(context.partition_keys)},
    )
    return result
