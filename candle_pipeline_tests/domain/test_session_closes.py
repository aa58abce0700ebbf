"""When schedules tick and which session a tick covers: exchange_calendars' facts, no Dagster."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from candle_pipeline.domain.exchanges import UnknownExchangeError
from candle_pipeline.domain.session_closes import close_schedule, closed_session

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("mic", "delay", "cron", "timezone"),
    [
        ("XNYS", 30, "30 16 * * 1,2,3,4,5", "America/New_York"),
        ("XNYS", 0, "0 16 * * 1,2,3,4,5", "America/New_York"),
        ("XLON", 45, "15 17 * * 1,2,3,4,5", "Europe/London"),
        ("XTKS", 60, "30 16 * * 1,2,3,4,5", "Asia/Tokyo"),
    ],
)
def test_ticks_at_the_regular_close_plus_delay_in_local_time(
    mic: str, delay: int, cron: str, timezone: str
) -> None:
    schedule = close_schedule(mic, delay)
    assert (schedule.cron, schedule.timezone) == (cron, timezone)


def test_a_delay_past_midnight_and_an_unknown_exchange_are_refused() -> None:
    with pytest.raises(ValueError, match="would tick after midnight"):
        close_schedule("XNYS", 8 * 60 + 1)
    with pytest.raises(UnknownExchangeError, match="'NOPE' is not known"):
        close_schedule("NOPE", 30)


def test_sessions_holidays_early_closes_and_weekends() -> None:
    def at(day: str, time: str = "16:30", zone: ZoneInfo = NEW_YORK) -> datetime:
        return datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=zone)

    session, why = closed_session("XNYS", at("2024-11-27"), 30)
    assert session is not None
    assert session.days == [date(2024, 11, 27)]
    assert why == "XNYS closed 2024-11-27"

    assert closed_session("XNYS", at("2024-11-28"), 30) == (
        None,
        "XNYS has no session on 2024-11-28",
    )

    session, why = closed_session("XNYS", at("2024-11-29"), 30)
    assert session is not None
    assert session.days == [date(2024, 11, 28), date(2024, 11, 29)]
    assert why == "XNYS closed 2024-11-29 (early close)"
    # The early close (13:00) has passed by 13:30, the regular close would not have.
    assert closed_session("XNYS", at("2024-11-29", "13:30"), 30)[0] is not None

    session, _ = closed_session("XNYS", at("2024-12-02"), 30)
    assert session is not None
    assert session.first_day == date(2024, 11, 30)

    # Boxing Day: London is closed on the 25th and 26th; the 27th's run covers both.
    session, _ = closed_session("XLON", at("2024-12-27", "17:15", LONDON), 45)
    assert session is not None
    assert session.days == [date(2024, 12, 25), date(2024, 12, 26), date(2024, 12, 27)]


def test_a_tick_without_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="must carry a time zone"):
        closed_session("XNYS", datetime(2024, 11, 27, 16, 30), 30)
