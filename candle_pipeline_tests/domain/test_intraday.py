"""What part of a session has happened by a moment, which bars and candles have ended, and the
request budget of the intraday refresh."""

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from candle_pipeline.domain import intraday
from candle_pipeline.domain.sessions import market_timings

MONDAY = date(2025, 2, 3)
SUNDAY = date(2025, 2, 2)
PRESIDENTS_DAY = date(2025, 2, 17)


def at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def expected_at(mic: str, moment: datetime) -> int:
    timings = market_timings([mic], moment.date(), moment.date())
    return int(intraday.elapsed_timings(timings, moment)["expected_minute_bars"].iloc[0])


@pytest.mark.parametrize(
    ("mic", "moment", "expected"),
    [
        ("XNYS", at(16), 90),  # 11:00 in New York: 09:30-10:59
        ("XNYS", at(14), 0),  # before the open
        ("XNYS", at(22), 390),  # after the close: the whole session
        ("XHKG", at(4, 30), 150),  # in the lunch break: 09:30-12:00 Hong Kong
        ("XHKG", at(6), 210),  # after the break: the hour of lunch does not count
        ("24/7", at(12, 0, SUNDAY), 720),  # crypto on a Sunday, at noon UTC
    ],
)
def test_a_session_in_progress_expects_only_its_elapsed_minutes(
    mic: str, moment: datetime, expected: int
) -> None:
    assert expected_at(mic, moment) == expected


def test_open_sessions_are_those_between_open_and_close() -> None:
    timings = market_timings(["XNYS", "24/7"], SUNDAY, PRESIDENTS_DAY)
    assert intraday.open_sessions(timings, at(12, 0, SUNDAY)) == {"24/7": SUNDAY}
    assert intraday.open_sessions(timings, at(16)) == {"XNYS": MONDAY, "24/7": MONDAY}
    assert intraday.open_sessions(timings, at(21)) == {"24/7": MONDAY}, "the close is out"
    assert intraday.open_sessions(timings, at(16, 0, PRESIDENTS_DAY)) == {"24/7": PRESIDENTS_DAY}


def frame(interval: str, *starts: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": "AAPL",
            "trade_date": pd.Timestamp(MONDAY),
            "interval": interval,
            "ts": pd.to_datetime(list(starts), utc=True),
        }
    )


def test_a_bar_counts_once_it_has_ended_and_a_refresh_keeps_only_what_is_new() -> None:
    bars = frame("1m", "2025-02-03 15:58", "2025-02-03 15:59", "2025-02-03 16:00")
    assert intraday.ended_by(bars, at(16)).tolist() == [True, True, False]
    last_stored = {"AAPL": pd.Timestamp("2025-02-03 15:58", tz="UTC")}
    fresh = intraday.new_bars(bars, last_stored, at(16))
    assert fresh["ts"].tolist() == [pd.Timestamp("2025-02-03 15:59", tz="UTC")]
    assert len(intraday.new_bars(bars, {}, at(16, 1))) == 3


def test_only_the_closed_buckets_of_an_unfinished_day_are_kept() -> None:
    candles = pd.concat(
        [
            frame("5m", "2025-02-03 15:50", "2025-02-03 15:55", "2025-02-03 16:00"),
            frame("1h", "2025-02-03 14:30", "2025-02-03 15:30"),
            frame("1d", "2025-02-03 14:30"),
        ],
        ignore_index=True,
    )
    unfinished = candles.loc[[0], ["trade_date", "ticker"]]
    kept = intraday.closed_candles(candles, unfinished, at(16))
    assert list(zip(kept["interval"], kept["ts"].dt.strftime("%H:%M"), strict=True)) == [
        ("5m", "15:50"),
        ("5m", "15:55"),
        ("1h", "14:30"),
    ]
    finished = intraday.closed_candles(candles, unfinished.iloc[0:0], at(16))
    assert len(finished) == len(candles), "a day whose session closed keeps all its candles"


def test_a_budget_that_cannot_fit_is_refused_naming_both_numbers() -> None:
    """A ticker costs its time-zone lookup and its chart request, a run (one per exchange) its
    cookie and crumb."""
    fits = intraday.RequestBudget(
        tickers=440, exchanges=2, every_minutes=15, requests_per_minute=60
    )
    assert (fits.needed, fits.allowed) == (884, 900)
    fits.check()
    too_many = intraday.RequestBudget(
        tickers=500, exchanges=1, every_minutes=15, requests_per_minute=60
    )
    with pytest.raises(intraday.BudgetError, match=r"^500 intraday ticker\(s\) .* 1002 .* 900"):
        too_many.check()
    every_minute = intraday.RequestBudget(
        tickers=2000, exchanges=1, every_minutes=1, requests_per_minute=60
    )
    with pytest.raises(intraday.BudgetError, match=r"4002 requests every 1 min.*allows 60:"):
        every_minute.check()
