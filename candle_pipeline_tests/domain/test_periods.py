from datetime import UTC, date, datetime

import pandas as pd

from candle_pipeline.domain.periods import (
    MONTHLY,
    PERIOD_COLUMNS,
    PERIOD_COMPLETE,
    PERIOD_INCOMPLETE,
    WEEKLY,
    period_candles,
    period_days,
    periods_touching,
)
from candle_pipeline.domain.sessions import market_timings

# The week of Independence Day 2014 (Friday 07-04 closed) and the week after it.
HOLIDAY_WEEK = (date(2014, 6, 30), date(2014, 7, 6))
NEXT_WEEK = (date(2014, 7, 7), date(2014, 7, 13))
AFTER_BOTH = datetime(2014, 7, 14, tzinfo=UTC)


def sessions(ticker: str, start: date, end: date) -> pd.DataFrame:
    timings = market_timings(["XNYS"], start, end)
    open_days = timings[timings["is_open"]]
    return pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": open_days["session_date"].to_numpy(),
            "close_utc": open_days["close_utc"].to_numpy(),
            "open_utc": open_days["open_utc"].to_numpy(),
        }
    )


def daily_candles(days: pd.DataFrame) -> pd.DataFrame:
    price = 100.0 + days.reset_index(drop=True).index.to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "ticker": days["ticker"].to_numpy(),
            "trade_date": days["trade_date"].to_numpy(),
            "interval": "1d",
            "ts": days["open_utc"].to_numpy(),
            "open": price,
            "high": price + 2,
            "low": price - 1,
            "close": price + 1,
            "volume": 10.0,
        }
    )


def complete(days: pd.DataFrame) -> pd.DataFrame:
    return days.loc[:, ["ticker", "trade_date"]].assign(status="complete")


def bounds(periods: pd.DataFrame, interval: str) -> list[tuple[date, date]]:
    chosen = periods[periods["interval"] == interval]
    return [
        (start.date(), end.date())
        for start, end in zip(chosen["period_start"], chosen["period_end"], strict=True)
    ]


def test_periods_are_calendar_weeks_from_monday_and_calendar_months() -> None:
    periods = periods_touching([date(2014, 7, 3), date(2014, 7, 8)])
    assert bounds(periods, WEEKLY) == [HOLIDAY_WEEK, NEXT_WEEK]
    assert bounds(periods, MONTHLY) == [(date(2014, 7, 1), date(2014, 7, 31))]
    weeks = periods[periods["interval"] == WEEKLY]
    assert period_days(weeks)[0] == HOLIDAY_WEEK[0]
    assert len(period_days(weeks)) == 14


def test_a_week_with_a_holiday_is_built_from_its_four_sessions() -> None:
    days = sessions("IBM", *HOLIDAY_WEEK)
    daily = daily_candles(days)
    weeks = periods_touching([HOLIDAY_WEEK[0]], [WEEKLY])
    built = period_candles(weeks, days, complete(days), daily, AFTER_BOTH)
    assert list(built.columns) == list(PERIOD_COLUMNS)
    week = built.iloc[0]
    assert week["status"] == PERIOD_COMPLETE and week["reason"] is None
    assert week["sessions"] == 4
    assert week["ts"] == pd.Timestamp("2014-06-30 13:30", tz="UTC")
    assert week["open"] == daily["open"].iloc[0]
    assert week["close"] == daily["close"].iloc[-1]
    assert week["high"] == daily["high"].max()
    assert week["low"] == daily["low"].min()
    assert week["volume"] == daily["volume"].sum()


def test_a_week_with_a_blocked_day_has_no_candle_and_says_why() -> None:
    days = sessions("IBM", *NEXT_WEEK)
    states = complete(days)
    states.loc[states["trade_date"] == pd.Timestamp("2014-07-09"), "status"] = "blocked"
    daily = daily_candles(days)
    missing_candle = daily["trade_date"] == pd.Timestamp("2014-07-10")
    weeks = periods_touching([NEXT_WEEK[0]], [WEEKLY])
    week = period_candles(weeks, days, states, daily[~missing_candle], AFTER_BOTH).iloc[0]
    assert week["status"] == PERIOD_INCOMPLETE
    assert week["reason"] == "2014-07-09 blocked; 2014-07-10 no daily candle"
    assert week[["open", "high", "low", "close", "volume"]].isna().all()
    assert pd.isna(week["ts"])


def test_a_session_never_materialised_stands_in_the_way_too() -> None:
    days = sessions("IBM", *NEXT_WEEK)
    weeks = periods_touching([NEXT_WEEK[0]], [WEEKLY])
    stored = complete(days).iloc[1:]
    week = period_candles(weeks, days, stored, daily_candles(days), AFTER_BOTH).iloc[0]
    assert week["reason"] == "2014-07-07 not materialised"


def test_a_period_is_judged_only_once_its_last_session_has_closed() -> None:
    days = sessions("IBM", *NEXT_WEEK)
    weeks = periods_touching([NEXT_WEEK[0]], [WEEKLY])
    friday_afternoon = datetime(2014, 7, 11, 19, 0, tzinfo=UTC)
    assert period_candles(weeks, days, complete(days), daily_candles(days), friday_afternoon).empty
    after_close = datetime(2014, 7, 11, 20, 0, tzinfo=UTC)
    assert len(period_candles(weeks, days, complete(days), daily_candles(days), after_close)) == 1


def test_tickers_and_periods_are_kept_apart() -> None:
    days = pd.concat(
        [sessions(ticker, HOLIDAY_WEEK[0], NEXT_WEEK[1]) for ticker in ("IBM", "SPY")],
        ignore_index=True,
    )
    states = complete(days)
    states.loc[
        (states["ticker"] == "SPY") & (states["trade_date"] == pd.Timestamp("2014-07-09")),
        "status",
    ] = "failed"
    periods = periods_touching([HOLIDAY_WEEK[0], NEXT_WEEK[0]], [WEEKLY])
    built = period_candles(periods, days, states, daily_candles(days), AFTER_BOTH)
    by_key = built.set_index(["ticker", "period_start"])
    assert by_key["sessions"].to_dict() == {
        ("IBM", pd.Timestamp("2014-06-30")): 4,
        ("IBM", pd.Timestamp("2014-07-07")): 5,
        ("SPY", pd.Timestamp("2014-06-30")): 4,
        ("SPY", pd.Timestamp("2014-07-07")): 5,
    }
    assert by_key["status"].to_dict()[("SPY", pd.Timestamp("2014-07-07"))] == PERIOD_INCOMPLETE
    assert (by_key["status"] == PERIOD_COMPLETE).sum() == 3
