from datetime import UTC, date, datetime, timedelta

from candle_pipeline.domain.freshness import due_ticker_days, latest_due_sessions
from candle_pipeline.domain.sessions import ExchangeDirectory

DELAY = timedelta(minutes=120)
LOOKBACK = 10


def due_day(mic: str, now: datetime) -> date:
    return latest_due_sessions([mic], now, DELAY, LOOKBACK)[mic].session_date


def test_a_session_is_due_its_delay_after_the_close() -> None:
    # 2013-10-07 closes 20:00 UTC (16:00 New York): due at 22:00 UTC.
    assert due_day("XNYS", datetime(2013, 10, 7, 21, 59, tzinfo=UTC)) == date(2013, 10, 4)
    assert due_day("XNYS", datetime(2013, 10, 7, 22, 0, tzinfo=UTC)) == date(2013, 10, 7)


def test_an_early_close_is_due_earlier() -> None:
    # 2015-12-24 closes at 13:00 New York (18:00 UTC): due at 20:00 UTC.
    assert due_day("XNYS", datetime(2015, 12, 24, 20, 0, tzinfo=UTC)) == date(2015, 12, 24)
    assert due_day("XNYS", datetime(2015, 12, 24, 19, 59, tzinfo=UTC)) == date(2015, 12, 23)


def test_over_a_weekend_and_a_holiday_the_last_session_stays_due() -> None:
    assert due_day("XNYS", datetime(2015, 12, 27, 12, 0, tzinfo=UTC)) == date(2015, 12, 24)
    assert due_day("XNYS", datetime(2013, 10, 6, 12, 0, tzinfo=UTC)) == date(2013, 10, 4)


def test_each_exchange_has_its_own_due_session() -> None:
    # Tokyo closes 06:00 UTC (15:00 JST), New York 21:00 UTC in winter.
    now = datetime(2015, 12, 28, 9, 0, tzinfo=UTC)
    due = latest_due_sessions(["XNYS", "XTKS"], now, DELAY, LOOKBACK)
    assert due["XTKS"].session_date == date(2015, 12, 28)
    assert due["XNYS"].session_date == date(2015, 12, 24)
    tickers = ExchangeDirectory(default="XNYS", by_ticker={"7203.T": "XTKS"})
    assert due_ticker_days(["SPY", "7203.T"], tickers, due) == [
        (date(2015, 12, 28), "7203.T"),
        (date(2015, 12, 24), "SPY"),
    ]
