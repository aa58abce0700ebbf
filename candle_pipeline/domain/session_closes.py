"""When an exchange's sessions close, as the schedules see it.

A schedule ticks once a day at the exchange's regular close plus a delay, in the exchange's time
zone, on the weekdays it trades. Whether a tick's day is a session, and when it really closed
(early closes), comes from `sessions.market_timings`, i.e. from exchange_calendars with the
calendar corrections in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import exchange_calendars as xcals
import pandas as pd

from candle_pipeline.domain import sessions

# exchange_calendars' weekmask starts on Monday; cron counts Sunday as 0.
CRON_WEEKDAYS = (1, 2, 3, 4, 5, 6, 0)
# Longer than any closure an exchange has had (holidays, storms, national mourning): the days
# since the previous session are searched this far back.
MAX_CLOSURE_DAYS = 21


@dataclass(frozen=True)
class CloseSchedule:
    """A cron expression and the time zone it is read in."""

    cron: str
    timezone: str


@dataclass(frozen=True)
class ClosedSession:
    """The session a tick covers, and the closed days between it and the previous session."""

    mic: str
    session: date
    first_day: date

    @property
    def days(self) -> list[date]:
        return [
            self.first_day + timedelta(days=offset)
            for offset in range((self.session - self.first_day).days + 1)
        ]


def close_schedule(mic: str, delay_minutes: int) -> CloseSchedule:
    """Tick at the regular close + `delay_minutes`, local time, on the exchange's trading weekdays.

    On an early close the tick still comes at the regular time: later than needed, never early.
    """
    today = pd.Timestamp.now(tz="UTC").date()
    calendar = _calendar(mic)
    _, regular_close = calendar.close_times[-1]
    tick = datetime.combine(today, regular_close) + timedelta(minutes=delay_minutes)
    if tick.date() != today:
        raise ValueError(
            f"{mic} closes at {regular_close:%H:%M}; a delay of {delay_minutes} minutes would "
            "tick after midnight: choose a shorter delay"
        )
    weekdays = ",".join(
        str(cron_day)
        for cron_day, trades in zip(CRON_WEEKDAYS, calendar.weekmask, strict=True)
        if trades == "1"
    )
    cron = f"{tick.minute} {tick.hour} * * {weekdays}"
    return CloseSchedule(cron=cron, timezone=str(calendar.tz))


def closed_session(
    mic: str, at: datetime, delay_minutes: int, overrides: pd.DataFrame = sessions.NO_OVERRIDES
) -> tuple[ClosedSession | None, str]:
    """The session of `at`'s local day if it closed at least `delay_minutes` before `at`, with
    `overrides` (the calendar corrections in force) laid over the library's sessions.

    Returns the session (None when there is nothing to do) and, in words, why.
    """
    if at.tzinfo is None:
        raise ValueError("the tick time must carry a time zone")
    local_day = pd.Timestamp(at).tz_convert(_calendar(mic).tz).date()
    timings = sessions.market_timings(
        [mic], local_day - timedelta(days=MAX_CLOSURE_DAYS), local_day, overrides
    )
    day = timings.iloc[-1]
    if not day["is_open"]:
        return None, f"{mic} has no session on {local_day.isoformat()}"
    closes_at = day["close_utc"] + pd.Timedelta(minutes=delay_minutes)
    if closes_at > pd.Timestamp(at):
        return None, (
            f"{mic}'s session of {local_day.isoformat()} closes at "
            f"{day['close_utc']:%H:%M} UTC; with the {delay_minutes} min delay not before "
            f"{closes_at:%H:%M} UTC"
        )
    earlier_open = timings.loc[timings["is_open"]].iloc[:-1]
    since = (
        pd.Timestamp(earlier_open["session_date"].iloc[-1]).date() + timedelta(days=1)
        if len(earlier_open)
        else local_day - timedelta(days=MAX_CLOSURE_DAYS)
    )
    early = " (early close)" if day["early_close"] else ""
    return ClosedSession(mic, local_day, since), f"{mic} closed {local_day.isoformat()}{early}"


def _calendar(mic: str) -> xcals.ExchangeCalendar:
    """The exchange's calendar, for its time zone, regular hours and weekmask."""
    today = pd.Timestamp.now(tz="UTC").date()
    return sessions.exchange_calendar(mic, today, today)
