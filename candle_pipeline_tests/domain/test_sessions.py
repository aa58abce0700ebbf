from datetime import date

import pandas as pd
import pytest

from candle_pipeline.domain.sessions import (
    ExchangeDirectory,
    MissingTimingsError,
    UnknownExchangeError,
    attach_sessions,
    market_timings,
    plan_fetches,
    session_tags,
)

XNYS = ExchangeDirectory(default="XNYS", by_ticker={})


def timings_row(timings: pd.DataFrame, day: str) -> pd.Series:
    return timings.set_index("session_date").loc[pd.Timestamp(day)]


def test_xnys_weekend_holiday_and_early_close() -> None:
    timings = market_timings(["XNYS"], date(2015, 12, 23), date(2015, 12, 28))
    assert len(timings) == 6
    assert not timings_row(timings, "2015-12-25")["is_open"]
    assert not timings_row(timings, "2015-12-26")["is_open"]
    early = timings_row(timings, "2015-12-24")
    assert early["is_open"]
    assert early["early_close"]
    assert early["open_utc"] == pd.Timestamp("2015-12-24 14:30", tz="UTC")
    assert early["close_utc"] == pd.Timestamp("2015-12-24 18:00", tz="UTC")
    assert early["expected_minute_bars"] == 210
    normal = timings_row(timings, "2015-12-23")
    assert not normal["early_close"]
    assert normal["expected_minute_bars"] == 390
    assert timings_row(timings, "2015-12-25")["expected_minute_bars"] == 0


def test_daylight_saving_moves_the_utc_open() -> None:
    timings = market_timings(["XNYS"], date(2024, 3, 8), date(2024, 3, 11))
    assert timings_row(timings, "2024-03-08")["open_utc"].hour == 14
    assert timings_row(timings, "2024-03-11")["open_utc"].hour == 13


def test_lunch_break_is_not_counted_as_session_minutes() -> None:
    timings = market_timings(["XHKG"], date(2020, 1, 2), date(2020, 1, 2))
    row = timings.iloc[0]
    assert pd.notna(row["break_start_utc"])
    length = (row["close_utc"] - row["open_utc"]) - (row["break_end_utc"] - row["break_start_utc"])
    assert row["expected_minute_bars"] == length / pd.Timedelta(minutes=1)
    assert row["expected_minute_bars"] < (row["close_utc"] - row["open_utc"]).seconds // 60


def test_unknown_exchange_and_reversed_range_are_refused() -> None:
    with pytest.raises(UnknownExchangeError, match="XXXX"):
        market_timings(["XXXX"], date(2020, 1, 1), date(2020, 1, 2))
    with pytest.raises(ValueError, match="reversed"):
        market_timings(["XNYS"], date(2020, 1, 2), date(2020, 1, 1))


def test_plan_skips_closed_days_and_groups_open_days_per_ticker() -> None:
    timings = market_timings(["XNYS"], date(2013, 10, 4), date(2013, 10, 7))
    pairs = [(date(2013, 10, d), t) for d in (4, 5, 6, 7) for t in ("SPY", "IBM")]
    plan = plan_fetches(pairs, timings, XNYS)
    assert plan.open_days == {
        "IBM": [date(2013, 10, 4), date(2013, 10, 7)],
        "SPY": [date(2013, 10, 4), date(2013, 10, 7)],
    }
    assert set(plan.skipped) == {(date(2013, 10, d), t) for d in (5, 6) for t in ("SPY", "IBM")}
    assert "market closed" in plan.skipped[(date(2013, 10, 5), "SPY")]


def test_plan_without_timings_names_the_missing_day() -> None:
    timings = market_timings(["XNYS"], date(2013, 10, 4), date(2013, 10, 4))
    with pytest.raises(MissingTimingsError, match="2013-10-07"):
        plan_fetches([(date(2013, 10, 7), "SPY")], timings, XNYS)


def test_session_tags_from_the_real_session() -> None:
    timings = market_timings(["XNYS"], date(2015, 12, 24), date(2015, 12, 24))
    stamps = ["2015-12-24 14:29", "2015-12-24 14:30", "2015-12-24 17:59", "2015-12-24 18:00"]
    bars = pd.DataFrame(
        {
            "ticker": "GOOG",
            "trade_date": pd.Timestamp("2015-12-24"),
            "interval": "1m",
            "ts": pd.to_datetime(stamps, utc=True),
        }
    )
    tags = session_tags(attach_sessions(bars, timings, XNYS))
    assert list(tags) == ["pre", "regular", "regular", "post"]
