"""`freshness` on `candles`: the latest due session of every active ticker is complete.

A session is due `CANDLE_FRESHNESS_DELAY_MINUTES` after its exchange's regular close (the early
close on a short day). Besides running after each materialisation of `candles`, the check runs in
its own job on `candles_freshness_schedule` (on with the other schedules, CANDLE_SCHEDULES_RUNNING),
because a stale asset is precisely one that no run touches.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from candle_pipeline.assets.types import CANDLES
from candle_pipeline.checks.quality import offending_metadata
from candle_pipeline.domain.freshness import (
    due_ticker_days,
    freshness_window,
    latest_due_sessions,
)
from candle_pipeline.domain.ticker_days import COMPLETE
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import OperationsSettings

FRESHNESS = "freshness"
# How often the freshness check runs when its schedule is on (UTC cron).
FRESHNESS_CHECK_CRON = "*/30 * * * *"
# Days back from today in which the freshness check looks for the latest closed session.
FRESHNESS_LOOKBACK_DAYS = 10


class FreshnessConfig(dg.Config):
    """`as_of`: evaluate as at this ISO-8601 time (UTC when it has no zone); default now."""

    as_of: str | None = None

    def moment(self) -> datetime:
        if self.as_of is None:
            return datetime.now(UTC)
        moment = datetime.fromisoformat(self.as_of)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dg.asset_check(
    asset=CANDLES,
    name=FRESHNESS,
    description=(
        "ERROR: every active watched ticker's latest session is complete (candles built) once "
        "that session is due (regular close + CANDLE_FRESHNESS_DELAY_MINUTES)."
    ),
)
def candles_freshness(
    config: FreshnessConfig,
    *,
    quality: QualityResource,
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    tickers = [entry.ticker for entry in warehouse.watchlist(active_only=True)]
    exchanges = warehouse.exchanges()
    delay = timedelta(minutes=quality.freshness_delay_minutes)
    mics = exchanges.mics_for(tickers)
    first, last = freshness_window(config.moment(), FRESHNESS_LOOKBACK_DAYS)
    overrides = warehouse.calendar_overrides_frame(mics, first, last)
    due_sessions = latest_due_sessions(
        mics, config.moment(), delay, FRESHNESS_LOOKBACK_DAYS, overrides
    )
    due = due_ticker_days(tickers, exchanges, due_sessions)
    days = sorted({day for day, _ in due})
    states = warehouse.ticker_day_states(days)
    done = states[states["status"] == COMPLETE]
    complete = set(zip(done["trade_date"].dt.date, done["ticker"], strict=True))
    missing = [
        f"{ticker} {day.isoformat()}" for day, ticker in due if (day, ticker) not in complete
    ]
    sessions = {
        mic: f"{session.session_date} (due {session.due_at:%Y-%m-%d %H:%M} UTC)"
        for mic, session in sorted(due_sessions.items())
    }
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(missing)} of {len(due)} due ticker-day(s) are not complete"
            if due
            else "no ticker has a due session"
        ),
        metadata={
            "due_sessions": ", ".join(f"{mic}: {text}" for mic, text in sessions.items()),
            "due_ticker_days": len(due),
            "missing_ticker_days": len(missing),
            **offending_metadata(missing),
            "delay_minutes": quality.freshness_delay_minutes,
        },
    )


freshness_job = dg.define_asset_job(
    "candles_freshness_job", selection=dg.AssetSelection.checks(candles_freshness)
)


def freshness_schedule(operations: OperationsSettings) -> dg.ScheduleDefinition:
    """Runs the check on FRESHNESS_CHECK_CRON; on by default with the other schedules
    (CANDLE_SCHEDULES_RUNNING)."""
    return dg.ScheduleDefinition(
        name="candles_freshness_schedule",
        job=freshness_job,
        cron_schedule=FRESHNESS_CHECK_CRON,
        execution_timezone="UTC",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if operations.schedules_running
            else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"Evaluates the freshness of `candles` on the cron `{FRESHNESS_CHECK_CRON}`.",
    )
