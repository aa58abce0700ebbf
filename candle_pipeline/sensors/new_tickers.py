"""`new_tickers_sensor`: a ticker added to the watch list gets its history, and only it.

Each tick compares the active watch list with what the sensor requested before (its cursor:
ticker -> the `added_at` it was requested for). The history days of the new tickers (their
history start to yesterday; today's session belongs to the after-close schedule) become runs of
`market_data_job` with `tickers` naming only them, so the other tickers' data of those days is
neither fetched nor rewritten. New tickers sharing a history window share the runs.

It also acts on what providers report: a ticker whose exchange was only the default, but whose
provider names another, moves to that exchange; its ticker-days were judged on the wrong
calendar, so its history is requested again the same way.
"""

import hashlib
import json
from collections import defaultdict
from datetime import date, timedelta

import dagster as dg

from candle_pipeline.jobs import market_data_job
from candle_pipeline.partitions import days_between, today
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.runs import WorkRequest, run_requests
from candle_pipeline.settings import get_settings
from candle_pipeline.warehouse.watchlist import WatchedTicker

TICKERS_TAG = "candle/tickers"
# How often the new-tickers sensor compares the watch list with what it requested.
NEW_TICKERS_SENSOR_INTERVAL_SECONDS = 30
# Dagster caps tag values; the full list is in the run config anyway.
TAG_VALUE_LIMIT = 255
RUN_KEY_DIGEST_BYTES = 8


def history_window(entry: WatchedTicker, current_day: date) -> tuple[date, date]:
    """First and last day of a newly watched ticker's history (first > last: nothing yet)."""
    first = max(entry.history_start or current_day, get_settings().partition_start)
    return first, current_day - timedelta(days=1)


def _tag_list(tickers: list[str]) -> str:
    text = ",".join(tickers)
    return text if len(text) <= TAG_VALUE_LIMIT else f"{text[: TAG_VALUE_LIMIT - 3]}..."


def _run_key(entries: list[WatchedTicker]) -> str:
    """The same tickers, added at the same moments, on the same exchanges: the same key."""
    text = json.dumps(
        sorted((entry.ticker, entry.added_at.isoformat(), entry.exchange) for entry in entries)
    )
    digest = hashlib.blake2b(text.encode(), digest_size=RUN_KEY_DIGEST_BYTES).hexdigest()
    return f"new-tickers:{digest}"


@dg.sensor(
    name="new_tickers_sensor",
    minimum_interval_seconds=NEW_TICKERS_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    job=market_data_job,
    description="Fetches the history of tickers added to the watch list, and only theirs.",
)
def new_tickers_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult:
    requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    moved = warehouse.correct_exchanges()
    for ticker, (old, new_mic) in moved.items():
        context.log.info(f"{ticker}: the provider names {new_mic}, not the default {old}")
    active = warehouse.watchlist(active_only=True)
    new = [
        entry
        for entry in active
        if requested.get(entry.ticker) != entry.added_at.isoformat() or entry.ticker in moved
    ]
    if not new:
        return dg.SensorResult(skip_reason="no new tickers on the watch list")
    current_day = today()
    requested.update({entry.ticker: entry.added_at.isoformat() for entry in new})
    by_window: dict[tuple[date, date], list[WatchedTicker]] = defaultdict(list)
    for entry in new:
        first, last = history_window(entry, current_day)
        if first <= last:
            by_window[(first, last)].append(entry)
    requests = []
    for (first, last), entries in sorted(by_window.items()):
        tickers = sorted(entry.ticker for entry in entries)
        request = WorkRequest(
            tuple(days_between(first, last)),
            tickers=tuple(tickers),
            tags={TICKERS_TAG: _tag_list(tickers)},
        )
        requests.extend(run_requests(request, key=_run_key(entries)))
    context.log.info(
        f"{len(new)} new ticker(s) ({len(moved)} moved to another exchange): "
        f"{len(requests)} run(s) requested for their history"
    )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(requested, sort_keys=True))
