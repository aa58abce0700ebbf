"""`new_tickers_sensor`: tickers added to the watch list become partitions and get their history.

Each tick compares the active watch list with the `tickers` dynamic partitions. New tickers are
added as partitions and ONE backfill is requested for all of them (their history from their own
`history_start`, else the configured lookback, to the last complete day), for the per-ticker
assets and the market timings of those days. The cursor remembers what was requested, so the same
request is never made twice.

It also acts on what providers report: a ticker whose exchange was only the default, but whose
provider names another exchange, moves to that exchange and its history is backfilled again, so
sessions and closed days follow its real calendar.
"""

import json
from collections.abc import Iterable, Mapping
from datetime import date, timedelta

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

from candle_pipeline.partitions import (
    TICKERS_PARTITION_NAME,
    TickerDay,
    ticker_day_partitions,
    ticker_partitions,
    timing_date_partitions,
)
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.runs import PER_TICKER_ASSETS, TIMINGS_ASSET
from candle_pipeline.settings import NEW_TICKERS_SENSOR_INTERVAL_SECONDS, get_settings
from candle_pipeline.warehouse.watchlist import WatchedTicker

BACKFILL_TAG = "candle/backfill"
BACKFILL_REASON = "new-tickers"
TICKERS_TAG = "candle/tickers"
# Dagster caps tag values; the full list is in the backfill's partitions anyway.
TAG_VALUE_LIMIT = 255


def history_window(entry: WatchedTicker, today: date, lookback_days: int) -> tuple[date, date]:
    """First and last day to backfill for a newly watched ticker (first > last: nothing)."""
    # Yesterday: today's session may still be trading; the after-close schedule fetches it.
    last = today - timedelta(days=1)
    first = entry.history_start or today - timedelta(days=lookback_days)
    return max(first, get_settings().partition_start), last


def backfill_subset(windows: Mapping[str, tuple[date, date]]) -> AssetGraphSubset:
    """Per-ticker assets for each ticker's window, and market timings for all their days."""
    ticker_keys: list[str] = []
    days: set[date] = set()
    for ticker, (first, last) in windows.items():
        span = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
        days.update(span)
        ticker_keys.extend(TickerDay(day, ticker).key for day in span)
    per_ticker = ticker_day_partitions.subset_with_partition_keys(ticker_keys)
    timings = timing_date_partitions.subset_with_partition_keys(
        sorted(day.isoformat() for day in days)
    )
    return AssetGraphSubset(
        partitions_subsets_by_asset_key={
            dg.AssetKey(TIMINGS_ASSET): timings,
            **{dg.AssetKey(name): per_ticker for name in PER_TICKER_ASSETS},
        },
        non_partitioned_asset_keys=set(),
    )


def _requested(cursor: str | None) -> dict[str, str]:
    return json.loads(cursor) if cursor else {}


def _tag_list(tickers: Iterable[str]) -> str:
    text = ",".join(tickers)
    return text if len(text) <= TAG_VALUE_LIMIT else f"{text[: TAG_VALUE_LIMIT - 3]}..."


@dg.sensor(
    name="new_tickers_sensor",
    minimum_interval_seconds=NEW_TICKERS_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[dg.AssetKey(name) for name in (TIMINGS_ASSET, *PER_TICKER_ASSETS)],
    description="Registers newly watched tickers as partitions and backfills their history.",
)
def new_tickers_sensor(
    context: dg.SensorEvaluationContext, watchlist: WatchlistResource
) -> dg.SensorResult:
    settings = get_settings()
    registered = set(context.instance.get_dynamic_partitions(TICKERS_PARTITION_NAME))
    requested = _requested(context.cursor)
    moved = watchlist.correct_exchanges()
    for ticker, (old, new_mic) in moved.items():
        context.log.info(f"{ticker}: the provider names {new_mic}, not the default {old}")
    active = watchlist.active()
    new = [
        entry
        for entry in active
        if entry.ticker not in registered
        and requested.get(entry.ticker) != entry.added_at.isoformat()
    ]
    # A ticker that moved exchange is fetched and tagged again on its real calendar.
    redo = [entry for entry in active if entry.ticker in moved and entry.ticker in registered]
    if not new and not redo:
        return dg.SensorResult(skip_reason="no new tickers on the watch list")

    today = date.today()
    windows = {
        entry.ticker: history_window(entry, today, settings.backfill_lookback_days)
        for entry in [*new, *redo]
    }
    windows = {ticker: span for ticker, span in windows.items() if span[0] <= span[1]}
    requested.update({entry.ticker: entry.added_at.isoformat() for entry in new})
    run_requests = []
    if windows:
        run_requests.append(
            dg.RunRequest.for_asset_graph_subset(
                backfill_subset(windows),
                tags={BACKFILL_TAG: BACKFILL_REASON, TICKERS_TAG: _tag_list(windows)},
            )
        )
    context.log.info(
        f"{len(new)} new ticker(s), {len(redo)} moved to another exchange; "
        f"one backfill of {len(windows)} ticker histories requested"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            ticker_partitions.build_add_request([entry.ticker for entry in new])
        ]
        if new
        else [],
        cursor=json.dumps(requested, sort_keys=True),
    )
