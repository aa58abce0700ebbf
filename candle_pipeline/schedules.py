"""Schedules: each exchange's session after its close, a weekly catch-up and the intraday
refresh of the sessions that are open.

- `<mic>_after_close`: on every session of the exchange, `delay` minutes after its regular close,
  the day partitions from the day after the previous session to the session (a weekend or a
  holiday in between: recorded closed, no provider call) for the active tickers on that exchange.
- `catchup_weekly`: the day partitions of the last N days for every ticker. Materialising a day
  completes it, so this costs provider calls only for ticker-days still missing or failed.
- `intraday_refresh`: every CANDLE_INTRADAY_MINUTES, for each exchange whose regular session is
  open at the tick (a 24/7 market always is), today's day partition for its tickers marked for
  intraday (all active ones with CANDLE_INTRADAY_ALL), as of the tick: the bars so far are
  stored provisional (`in_progress`). A watch list whose refreshes need more requests than the
  rate limit allows between two ticks is refused with both numbers.

Which tickers trade where comes from a `ListingSource` evaluated at each tick on the code
location's warehouse resource (a typed parameter of each schedule): the active watch list, each
ticker on its watch-list exchange; whether a tick's day is a session, from the exchange's
calendar with the corrections in force (an `OverrideSource`, read at each tick too).
"""

from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import date, datetime, timedelta

import dagster as dg
import pandas as pd

from candle_pipeline.domain.intraday import BudgetError, RequestBudget, open_sessions
from candle_pipeline.domain.session_closes import (
    MAX_CLOSURE_DAYS,
    close_schedule,
    closed_session,
)
from candle_pipeline.domain.sessions import market_timings
from candle_pipeline.jobs import market_data_job
from candle_pipeline.partitions import days_between
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.runs import WorkRequest, run_requests
from candle_pipeline.settings import (
    MINUTES_PER_HOUR,
    OperationsSettings,
    Settings,
    get_settings,
)

Listing = tuple[str, str]
"""(ticker, exchange MIC)."""
ListingSource = Callable[[WarehouseResource], Iterable[Listing]]
OverrideSource = Callable[[WarehouseResource, str, date, date], pd.DataFrame]
"""(warehouse, mic, first day, last day) -> the calendar corrections in force."""
Tick = dg.RunRequest | dg.SkipReason

EXCHANGE_TAG = "candle/exchange"
SESSION_TAG = "candle/session"
CATCHUP_TAG = "candle/catchup"
INTRADAY_TAG = "candle/intraday"
UTC = "UTC"


def watchlist_listings(warehouse: WarehouseResource) -> list[Listing]:
    """Every active watched ticker on its watch-list exchange, read at each tick."""
    return [(entry.ticker, entry.exchange) for entry in warehouse.watchlist(active_only=True)]


def warehouse_overrides(
    warehouse: WarehouseResource, mic: str, first: date, last: date
) -> pd.DataFrame:
    """The calendar corrections of `mic` between `first` and `last`, read at each tick."""
    return warehouse.calendar_overrides_frame([mic], first, last)


def intraday_listings(include_all: bool) -> ListingSource:
    """The active watched tickers marked for intraday (every active one with `include_all`),
    read at each tick like `watchlist_listings`."""

    def listings(warehouse: WarehouseResource) -> list[Listing]:
        entries = warehouse.watchlist(active_only=True)
        return [(e.ticker, e.exchange) for e in entries if include_all or e.intraday]

    return listings


def scheduled_exchanges(settings: Settings) -> set[str]:
    """Exchanges with an after-close schedule: the default and CANDLE_EXCHANGES.

    Schedules are fixed when the code location loads; `candle-pipeline doctor` names watched
    exchanges that have none.
    """
    return {settings.default_exchange, *settings.extra_exchanges}


def build_schedules(
    exchanges: Collection[str],
    listings: ListingSource,
    operations: OperationsSettings,
    *,
    overrides: OverrideSource = warehouse_overrides,
    requests_per_minute: float | None = None,
) -> list[dg.ScheduleDefinition]:
    """One after-close schedule per exchange, the weekly catch-up and the intraday refresh
    (its budget from `requests_per_minute`, default the provider's setting)."""
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if operations.schedules_running
        else dg.DefaultScheduleStatus.STOPPED
    )
    return [
        *(
            session_schedule(mic, listings, operations, status, overrides)
            for mic in sorted(exchanges)
        ),
        catchup_schedule(operations, status),
        intraday_schedule(
            intraday_listings(operations.intraday_all),
            operations,
            status,
            requests_per_minute or get_settings().requests_per_minute,
            overrides,
        ),
    ]


def session_schedule(
    mic: str,
    listings: ListingSource,
    operations: OperationsSettings,
    status: dg.DefaultScheduleStatus,
    overrides: OverrideSource = warehouse_overrides,
) -> dg.ScheduleDefinition:
    delay = operations.schedule_delay_minutes
    when = close_schedule(mic, delay)

    @dg.schedule(
        name=f"{mic.lower()}_after_close",
        cron_schedule=when.cron,
        execution_timezone=when.timezone,
        job=market_data_job,
        default_status=status,
        description=(
            f"The just-closed {mic} session for every active ticker on {mic}, {delay} min after "
            "the regular close; holidays are skipped."
        ),
    )
    def after_close(
        context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
    ) -> Iterator[Tick]:
        tick = context.scheduled_execution_time
        # The exchange's local day is at most a day either side of the tick's UTC day.
        utc_day = _utc_day(tick)
        in_force = overrides(
            warehouse,
            mic,
            utc_day - timedelta(days=MAX_CLOSURE_DAYS + 1),
            utc_day + timedelta(days=1),
        )
        session, why = closed_session(mic, tick, delay, in_force)
        if session is None:
            yield dg.SkipReason(why)
            return
        tickers = sorted(ticker for ticker, exchange in listings(warehouse) if exchange == mic)
        if not tickers:
            yield dg.SkipReason(f"{why}, but no active ticker trades on {mic}")
            return
        request = WorkRequest(
            tuple(session.days),
            tickers=tuple(tickers),
            tags={EXCHANGE_TAG: mic, SESSION_TAG: session.session.isoformat()},
        )
        yield from run_requests(request, key=f"{mic}:{session.session.isoformat()}")

    return after_close


def catchup_schedule(
    operations: OperationsSettings, status: dg.DefaultScheduleStatus
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="catchup_weekly",
        cron_schedule=operations.catchup_cron,
        execution_timezone=UTC,
        job=market_data_job,
        default_status=status,
        description=(
            f"The day partitions of the last {operations.catchup_days} days: only the "
            "ticker-days still missing or failed cost a provider call."
        ),
    )
    def catchup_weekly(context: dg.ScheduleEvaluationContext) -> Iterator[Tick]:
        tick_day = _utc_day(context.scheduled_execution_time)
        days = catchup_days(tick_day, operations.catchup_days)
        if not days:
            yield dg.SkipReason("no day in the catch-up window")
            return
        request = WorkRequest(tuple(days), tags={CATCHUP_TAG: tick_day.isoformat()})
        yield from run_requests(request, key=f"catchup:{tick_day.isoformat()}")

    return catchup_weekly


def intraday_schedule(
    listings: ListingSource,
    operations: OperationsSettings,
    status: dg.DefaultScheduleStatus,
    requests_per_minute: float,
    overrides: OverrideSource = warehouse_overrides,
) -> dg.ScheduleDefinition:
    every = operations.intraday_minutes

    @dg.schedule(
        name="intraday_refresh",
        cron_schedule=f"*/{every} * * * *" if every < MINUTES_PER_HOUR else "0 * * * *",
        execution_timezone=UTC,
        job=market_data_job,
        default_status=status,
        description=(
            f"Every {every} min: today's bars so far (provisional) of the intraday tickers of "
            "each exchange whose session is open."
        ),
    )
    def intraday_refresh(
        context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource
    ) -> Iterator[Tick]:
        moment = pd.Timestamp(context.scheduled_execution_time).tz_convert(UTC).to_pydatetime()
        tickers = sorted(set(listings(warehouse)))
        if not tickers:
            yield dg.SkipReason(
                "no ticker is marked for intraday: `candle-pipeline tickers add --intraday`, "
                "or CANDLE_INTRADAY_ALL=true"
            )
            return
        mics = sorted({mic for _, mic in tickers})
        try:
            RequestBudget(len(tickers), len(mics), every, requests_per_minute).check()
        except BudgetError as error:
            yield dg.SkipReason(str(error))
            return
        first, last = moment.date() - timedelta(days=1), moment.date() + timedelta(days=1)
        corrections = pd.concat(
            [overrides(warehouse, mic, first, last) for mic in mics], ignore_index=True
        )
        sessions = open_sessions(market_timings(mics, first, last, corrections), moment)
        if not sessions:
            yield dg.SkipReason(
                f"no session is open at {moment:%Y-%m-%d %H:%M} UTC on {', '.join(mics)}"
            )
            return
        for mic, session in sorted(sessions.items()):
            request = WorkRequest(
                (session,),
                tickers=tuple(ticker for ticker, exchange in tickers if exchange == mic),
                as_of=moment,
                tags={EXCHANGE_TAG: mic, INTRADAY_TAG: moment.isoformat()},
            )
            yield from run_requests(request, key=f"intraday:{mic}:{moment.isoformat()}")

    return intraday_refresh


def catchup_days(tick_day: date, lookback_days: int) -> list[date]:
    """The `lookback_days` complete days before `tick_day`, not before the first partition."""
    first = max(tick_day - timedelta(days=lookback_days), get_settings().partition_start)
    return days_between(first, tick_day - timedelta(days=1)) if first < tick_day else []


def _utc_day(moment: datetime) -> date:
    return pd.Timestamp(moment).tz_convert(UTC).date()
