from datetime import UTC, date, datetime

import pandas as pd
import pytest

from candle_pipeline.domain.exchanges import UnknownExchangeError
from candle_pipeline.domain.sessions import (
    ExchangeDirectory,
    attach_sessions,
    market_timings,
    session_tags,
    sessions_in_progress,
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


def test_xnys_against_published_facts() -> None:
    timings = market_timings(["XNYS"], date(2024, 11, 25), date(2025, 1, 10))
    for closed in ("2024-11-28", "2024-12-25", "2025-01-09"):
        assert not timings_row(timings, closed)["is_open"], closed
    for half_day in ("2024-11-29", "2024-12-24"):
        row = timings_row(timings, half_day)
        assert row["early_close"], half_day
        assert row["close_utc"] == pd.Timestamp(f"{half_day} 18:00", tz="UTC")
        assert row["close_utc"].tz_convert("America/New_York").hour == 13
        assert row["expected_minute_bars"] == 210
    assert timings_row(timings, "2025-01-08")["expected_minute_bars"] == 390


def test_a_non_us_exchange_in_its_own_time_zone() -> None:
    timings = market_timings(["XLON"], date(2024, 12, 23), date(2024, 12, 27))
    normal = timings_row(timings, "2024-12-23")
    assert normal["open_utc"] == pd.Timestamp("2024-12-23 08:00", tz="UTC")
    assert normal["close_utc"] == pd.Timestamp("2024-12-23 16:30", tz="UTC")
    christmas_eve = timings_row(timings, "2024-12-24")
    assert christmas_eve["early_close"]
    assert christmas_eve["close_utc"] == pd.Timestamp("2024-12-24 12:30", tz="UTC")
    assert not timings_row(timings, "2024-12-26")["is_open"], "Boxing Day"


def test_a_24_7_market_is_open_every_day() -> None:
    timings = market_timings(["24/7"], date(2020, 1, 1), date(2020, 1, 7))
    assert timings["is_open"].all()
    assert (timings["expected_minute_bars"] == 24 * 60).all()
    assert timings["open_utc"].iloc[0] == pd.Timestamp("2020-01-01", tz="UTC")


def test_several_exchanges_in_one_frame() -> None:
    timings = market_timings(["XNYS", "XLON", "XNYS"], date(2024, 7, 4), date(2024, 7, 4))
    by_mic = timings.set_index("mic")["is_open"].to_dict()
    assert by_mic == {"XLON": True, "XNYS": False}


def test_a_session_is_in_progress_until_its_close() -> None:
    day = date(2024, 7, 3)  # an early close on XNYS: 13:00 New York, 17:00 UTC
    before_close = datetime(2024, 7, 3, 16, 59, tzinfo=UTC)
    running = sessions_in_progress(["XNYS", "XLON", "24/7"], day, before_close)
    assert running == {
        "XNYS": pd.Timestamp("2024-07-03 17:00", tz="UTC"),
        "24/7": pd.Timestamp("2024-07-04 00:00", tz="UTC"),
    }, "London closed at 15:30 UTC"
    after_close = datetime(2024, 7, 3, 17, 0, tzinfo=UTC)
    assert list(sessions_in_progress(["XNYS"], day, after_close)) == []
    assert sessions_in_progress(["XNYS"], date(2024, 7, 4), before_close) == {}, "a holiday"
