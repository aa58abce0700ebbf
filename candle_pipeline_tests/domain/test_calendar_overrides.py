"""Calendar corrections laid over exchange_calendars: what each kind does to a day's timings, which
overrides are refused and why, which runs a change asks for, and that every shipped correction
corrects something the pinned library gets wrong."""

from __future__ import annotations

import importlib.util
from datetime import date, time
from pathlib import Path

import pandas as pd
import pytest

from candle_pipeline.domain import sessions
from candle_pipeline.domain.calendar_overrides import (
    CLOSED,
    EARLY_CLOSE,
    LATE_OPEN,
    STORED_BARS_AGAIN,
    TIMINGS_ONLY,
    WHOLE_CHAIN,
    CalendarOverride,
    OverrideError,
    Reevaluation,
    RegularSession,
    check_day,
    check_override,
    overrides_frame,
    parse_clock,
    reevaluations,
)
from candle_pipeline.domain.exchanges import YAHOO_EXCHANGE_MICS

MONDAY, TUESDAY, WEDNESDAY = date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9)
SATURDAY = date(2013, 10, 5)
MIGRATION = (
    Path(sessions.__file__).parents[1] / "warehouse/migrations/versions/0003_calendar_overrides.py"
)


def day(mic: str, on: date, *overrides: CalendarOverride) -> pd.Series:
    timings = sessions.market_timings([mic], on, on, overrides_frame(overrides))
    return timings.iloc[0]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_a_closure_closes_an_open_day_and_expects_nothing() -> None:
    closed = day("XNYS", TUESDAY, CalendarOverride("XNYS", TUESDAY, CLOSED, reason="mourning"))
    assert not closed["is_open"]
    assert pd.isna(closed["open_utc"]) and pd.isna(closed["close_utc"])
    assert closed["expected_minute_bars"] == 0
    assert day("XNYS", MONDAY, CalendarOverride("XNYS", TUESDAY, CLOSED))["is_open"]


def test_a_late_open_and_an_early_close_shorten_the_session() -> None:
    late = day("XNYS", TUESDAY, CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(10, 30)))
    assert late["open_utc"] == utc("2013-10-08 14:30")
    assert late["close_utc"] == utc("2013-10-08 20:00")
    assert late["expected_minute_bars"] == 330
    assert not late["early_close"]
    both = day(
        "XNYS",
        TUESDAY,
        CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(10, 30)),
        CalendarOverride("XNYS", TUESDAY, EARLY_CLOSE, time(13)),
    )
    assert (both["open_utc"], both["close_utc"]) == (
        utc("2013-10-08 14:30"),
        utc("2013-10-08 17:00"),
    )
    assert both["expected_minute_bars"] == 150
    assert both["early_close"]


def test_a_lunch_break_counts_only_where_it_lies_inside_the_corrected_session() -> None:
    # Hong Kong: 09:30-12:00 and 13:00-16:00 local (330 minutes).
    afternoon = day("XHKG", TUESDAY, CalendarOverride("XHKG", TUESDAY, LATE_OPEN, time(13, 30)))
    assert afternoon["expected_minute_bars"] == 150
    in_break = day("XHKG", TUESDAY, CalendarOverride("XHKG", TUESDAY, EARLY_CLOSE, time(12, 30)))
    assert in_break["expected_minute_bars"] == 150


def test_the_librarys_closure_stands() -> None:
    saturday = day("XNYS", SATURDAY, CalendarOverride("XNYS", SATURDAY, LATE_OPEN, time(10)))
    assert not saturday["is_open"]
    assert pd.isna(saturday["open_utc"])


def test_timings_keep_their_types_with_and_without_corrections() -> None:
    plain = sessions.market_timings(["XNYS", "XHKG"], MONDAY, WEDNESDAY)
    corrected = sessions.market_timings(
        ["XNYS", "XHKG"],
        MONDAY,
        WEDNESDAY,
        overrides_frame([CalendarOverride("XHKG", TUESDAY, CLOSED, reason="typhoon")]),
    )
    assert (plain.dtypes == corrected.dtypes).all()
    assert (plain["is_open"] != corrected["is_open"]).sum() == 1


def regular(mic: str, on: date) -> RegularSession | None:
    return sessions.regular_session(mic, on)


@pytest.mark.parametrize(
    ("override", "existing", "message"),
    [
        (
            CalendarOverride("XNYS", TUESDAY, EARLY_CLOSE, time(16, 30)),
            [],
            "16:30 is outside XNYS on 2013-10-08's regular session (09:30-16:00 local time)",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(9, 30)),
            [],
            "09:30 is outside XNYS on 2013-10-08's regular session",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, CLOSED),
            [],
            "closing XNYS on 2013-10-08 needs a --reason",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(10)),
            [CalendarOverride("XNYS", TUESDAY, CLOSED, reason="storm")],
            "XNYS on 2013-10-08 already has a closure: `calendar remove XNYS 2013-10-08` first",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, CLOSED, reason="storm"),
            [CalendarOverride("XNYS", TUESDAY, EARLY_CLOSE, time(13))],
            "XNYS on 2013-10-08 already has an early close",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(11)),
            [CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(10))],
            "XNYS on 2013-10-08 already has a late open",
        ),
        (
            CalendarOverride("XNYS", TUESDAY, EARLY_CLOSE, time(10)),
            [CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(11))],
            "would open at 11:00 and close at 10:00",
        ),
        (
            CalendarOverride("XNYS", SATURDAY, CLOSED, reason="storm"),
            [],
            "exchange_calendars has no session of XNYS on 2013-10-05: nothing to correct",
        ),
    ],
)
def test_contradictions_are_refused_in_one_line(
    override: CalendarOverride, existing: list[CalendarOverride], message: str
) -> None:
    with pytest.raises(OverrideError) as refused:
        check_override(override, regular(override.mic, override.session_date), existing)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_compatible_overrides_are_accepted() -> None:
    late = CalendarOverride("XNYS", TUESDAY, LATE_OPEN, time(10))
    check_override(late, regular("XNYS", TUESDAY), [])
    early = CalendarOverride("XNYS", TUESDAY, EARLY_CLOSE, time(13))
    check_override(early, regular("XNYS", TUESDAY), [late])
    other_day = CalendarOverride("XNYS", MONDAY, CLOSED, reason="storm")
    check_override(other_day, regular("XNYS", MONDAY), [late, early])


@pytest.mark.parametrize("text", ["25:00", "9:30", "10:60", "noon", "10:30:00", ""])
def test_a_time_is_hh_mm(text: str) -> None:
    with pytest.raises(OverrideError, match="is not a time of day HH:MM"):
        parse_clock(text)
    assert parse_clock(" 09:05 ") == time(9, 5)


def test_a_day_far_outside_the_partitions_is_refused() -> None:
    first, today = date(2000, 1, 1), date(2026, 12, 1)
    check_day(date(2027, 12, 1), first, today)
    with pytest.raises(OverrideError, match="1850-01-02 is outside the days"):
        check_day(date(1850, 1, 2), first, today)
    with pytest.raises(OverrideError, match="2199-01-01 is outside the days"):
        check_day(date(2199, 1, 1), first, today)


def test_a_change_asks_for_the_runs_its_kind_needs() -> None:
    expected = pd.DataFrame(
        {
            "trade_date": pd.to_datetime(["2013-10-08", "2013-10-08", "2013-10-08"]),
            "ticker": ["SPY", "IBM", "0700.HK"],
            "exchange": ["XNYS", "XNYS", "XHKG"],
        }
    )
    materialised = {("XNYS", TUESDAY), ("XHKG", TUESDAY), ("XLON", TUESDAY)}
    changed = {
        "1:recorded": CalendarOverride("XNYS", TUESDAY, CLOSED, reason="storm"),
        "2:removed": CalendarOverride("XHKG", TUESDAY, LATE_OPEN, time(13, 30)),
        "3:recorded": CalendarOverride("XLON", TUESDAY, EARLY_CLOSE, time(12, 30)),
        "4:recorded": CalendarOverride("XNYS", MONDAY, CLOSED, reason="never materialised"),
    }
    assert reevaluations(changed, expected, materialised) == [
        Reevaluation(TUESDAY, TIMINGS_ONLY, (), "3:recorded"),
        Reevaluation(TUESDAY, WHOLE_CHAIN, ("IBM", "SPY"), "1:recorded"),
        Reevaluation(TUESDAY, STORED_BARS_AGAIN, ("0700.HK",), "2:removed"),
    ]


def shipped() -> list[CalendarOverride]:
    spec = importlib.util.spec_from_file_location("shipped_corrections", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        CalendarOverride(mic, on, kind, at, reason, source)
        for mic, on, kind, at, reason, source in module.SHIPPED
    ]


def test_every_shipped_correction_corrects_what_the_pinned_library_gets_wrong() -> None:
    corrections = shipped()
    mapped = set(YAHOO_EXCHANGE_MICS.values())
    for override in corrections:
        assert override.mic in mapped, override
        assert override.source and override.source.startswith("https://"), override
        # Valid against the library: a real session of it, a time inside its regular hours.
        check_override(override, regular(override.mic, override.session_date), [])
        before = day(override.mic, override.session_date)
        after = day(override.mic, override.session_date, override)
        assert not before.equals(after), f"the library already has {override.describe()}"
