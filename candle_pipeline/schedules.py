"""Schedules: each exchange's session after its close, market timings ahead, a weekly catch-up.

- `<mic>_after_close`: on every session of the exchange, `delay` minutes after its regular close,
  the session's partitions for every active ticker on that exchange, together with the closed days
  since the previous session (a weekend, a holiday: no provider call, but no gap in the grid).
- `market_timings_daily`: market timings from the catch-up window to a week ahead, so every
  ticker run finds its day's timings.
- `catchup_weekly`: every partition of the last N days that is missing or whose last run failed,
  from the first asset that needs it downstream (a failed `candles` does not refetch quotes).

Which tickers trade where comes from a `ListingSource` evaluated at each tick: the active watch
list's registered tickers, each on its watch-list exchange.
"""

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd

from candle_pipeline.domain.session_closes import close_schedule, closed_session
from candle_pipeline.jobs import market_timings_job, ticker_days_job
from candle_pipeline.partitions import (
    TICKERS_PARTITION_NAME,
    TickerDay,
    ticker_day_partitions,
)
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.runs import PER_TICKER_ASSETS, range_tags, rectangles
from candle_pipeline.settings import (
    ENV_DATABASE_URL,
    TIMINGS_SCHEDULE_CRON,
    TIMINGS_SCHEDULE_DAYS_AHEAD,
    OperationsSettings,
    Settings,
    get_settings,
)
from candle_pipeline.warehouse import watchlist

Listing = tuple[str, str]
"""(ticker, exchange MIC)."""
ListingSource = Callable[[dg.DagsterInstance], Iterable[Listing]]
Tick = dg.RunRequest | dg.SkipReason

EXCHANGE_TAG = "candle/exchange"
SESSION_TAG = "candle/session"
CATCHUP_TAG = "candle/catchup"
UTC = "UTC"
NEEDS_RUN = (dg.AssetPartitionStatus.FAILED, None)


def watchlist_listings(instance: dg.DagsterInstance) -> list[Listing]:
    """Every active watched ticker that is a registered partition, on its watch-list exchange.

    Read at each tick from the warehouse named by CANDLE_DATABASE_URL (the code location's own).
    """
    registered = set(instance.get_dynamic_partitions(TICKERS_PARTITION_NAME))
    with engine_for(dg.EnvVar(ENV_DATABASE_URL).get_value()).connect() as connection:
        entries = watchlist.entries(connection, active_only=True)
    return [(entry.ticker, entry.exchange) for entry in entries if entry.ticker in registered]


def scheduled_exchanges(settings: Settings) -> set[str]:
    """Exchanges with an after-close schedule: the default and CANDLE_EXCHANGES.

    Schedules are fixed when the code location loads; `candle-pipeline doctor` names watched
    exchanges that have none.
    """
    return {settings.default_exchange, *settings.extra_exchanges}


def build_schedules(
    exchanges: Collection[str], listings: ListingSource, operations: OperationsSettings
) -> list[dg.ScheduleDefinition]:
    """One after-close schedule per exchange, the timings schedule and the weekly catch-up."""
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if operations.schedules_running
        else dg.DefaultScheduleStatus.STOPPED
    )
    return [
        *(session_schedule(mic, listings, operations, status) for mic in sorted(exchanges)),
        timings_schedule(operations, status),
        catchup_schedule(listings, operations, status),
    ]


def session_schedule(
    mic: str,
    listings: ListingSource,
    operations: OperationsSettings,
    status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    delay = operations.schedule_delay_minutes
    when = close_schedule(mic, delay)

    @dg.schedule(
        name=f"{mic.lower()}_after_close",
        cron_schedule=when.cron,
        execution_timezone=when.timezone,
        job=ticker_days_job,
        default_status=status,
        description=(
            f"The just-closed {mic} session for every active ticker on {mic}, {delay} min after "
            "the regular close; holidays are skipped."
        ),
    )
    def after_close(context: dg.ScheduleEvaluationContext) -> Iterator[Tick]:
        session, why = closed_session(mic, context.scheduled_execution_time, delay)
        if session is None:
            yield dg.SkipReason(why)
            return
        registered = context.instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
        tickers = _active_tickers(listings(context.instance), registered, mic)
        if not tickers:
            yield dg.SkipReason(f"{why}, but no active ticker trades on {mic}")
            return
        for rectangle in rectangles({day: tickers for day in session.days}, registered):
            yield dg.RunRequest(
                run_key=f"{mic}:{session.session.isoformat()}:{rectangle.first_key}",
                tags={
                    **rectangle.tags,
                    EXCHANGE_TAG: mic,
                    SESSION_TAG: session.session.isoformat(),
                },
            )

    return after_close


def timings_schedule(
    operations: OperationsSettings, status: dg.DefaultScheduleStatus
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="market_timings_daily",
        cron_schedule=TIMINGS_SCHEDULE_CRON,
        execution_timezone=UTC,
        job=market_timings_job,
        default_status=status,
        description=(
            f"market_timings from {operations.catchup_days} days back to "
            f"{TIMINGS_SCHEDULE_DAYS_AHEAD} days ahead, so ticker runs find their timings."
        ),
    )
    def market_timings_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        today = _utc_day(context.scheduled_execution_time)
        first = max(today - timedelta(days=operations.catchup_days), get_settings().timings_start)
        last = today + timedelta(days=TIMINGS_SCHEDULE_DAYS_AHEAD)
        return dg.RunRequest(
            run_key=f"timings:{today.isoformat()}",
            tags=range_tags(first.isoformat(), last.isoformat()),
        )

    return market_timings_daily


def catchup_schedule(
    listings: ListingSource, operations: OperationsSettings, status: dg.DefaultScheduleStatus
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="catchup_weekly",
        cron_schedule=operations.catchup_cron,
        execution_timezone=UTC,
        job=ticker_days_job,
        default_status=status,
        description=(
            f"Every partition of the last {operations.catchup_days} days that is missing or "
            "failed, for every active ticker."
        ),
    )
    def catchup_weekly(context: dg.ScheduleEvaluationContext) -> Iterator[Tick]:
        tick_day = _utc_day(context.scheduled_execution_time)
        days = catchup_days(tick_day, operations.catchup_days)
        registered = context.instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
        tickers = _active_tickers(listings(context.instance), registered)
        keys = [TickerDay(day, ticker) for day in days for ticker in tickers]
        if not keys:
            yield dg.SkipReason("no active tickers, or no day in the catch-up window")
            return
        plan = catchup_plan(_statuses(context.instance, keys), keys)
        if not plan:
            yield dg.SkipReason(
                f"all {len(keys)} partitions of {days[0].isoformat()}..{days[-1].isoformat()} "
                "are materialised or in progress"
            )
            return
        for selection, tickers_by_day in plan.items():
            for rectangle in rectangles(tickers_by_day, registered):
                yield dg.RunRequest(
                    run_key=f"catchup:{tick_day.isoformat()}:{selection[0]}:{rectangle.first_key}",
                    asset_selection=[dg.AssetKey(name) for name in selection],
                    tags={**rectangle.tags, CATCHUP_TAG: tick_day.isoformat()},
                )

    return catchup_weekly


def catchup_days(tick_day: date, lookback_days: int) -> list[date]:
    """The `lookback_days` complete days before `tick_day`, not before the first partition."""
    first = max(tick_day - timedelta(days=lookback_days), get_settings().partition_start)
    return [first + timedelta(days=n) for n in range((tick_day - first).days)]


def catchup_plan(
    statuses: Mapping[str, Mapping[str, dg.AssetPartitionStatus | None]],
    keys: Sequence[TickerDay],
) -> dict[tuple[str, ...], dict[date, list[str]]]:
    """asset selection -> day -> tickers that need it.

    A partition needs the first asset (in graph order) that is missing or failed and everything
    downstream of it; a partition with any asset in progress is left alone.
    """
    plan: dict[tuple[str, ...], dict[date, list[str]]] = {}
    for key in keys:
        states = [statuses[asset].get(key.key) for asset in PER_TICKER_ASSETS]
        if dg.AssetPartitionStatus.IN_PROGRESS in states:
            continue
        first = next((i for i, state in enumerate(states) if state in NEEDS_RUN), None)
        if first is None:
            continue
        by_day = plan.setdefault(PER_TICKER_ASSETS[first:], {})
        by_day.setdefault(key.trade_date, []).append(key.ticker)
    return plan


def _statuses(
    instance: dg.DagsterInstance, keys: Sequence[TickerDay]
) -> dict[str, Mapping[str, dg.AssetPartitionStatus | None]]:
    partition_keys = [key.key for key in keys]
    return {
        asset: instance.get_status_by_partition(
            dg.AssetKey(asset), partition_keys, ticker_day_partitions
        )
        or {}
        for asset in PER_TICKER_ASSETS
    }


def _active_tickers(
    listings: Iterable[Listing], registered: Sequence[str], mic: str | None = None
) -> list[str]:
    """Listed tickers (on `mic`, if given) that have partitions, in registration order."""
    listed = {ticker for ticker, exchange in listings if mic is None or exchange == mic}
    return [ticker for ticker in registered if ticker in listed]


def _utc_day(moment: datetime) -> date:
    return pd.Timestamp(moment).tz_convert(UTC).date()
