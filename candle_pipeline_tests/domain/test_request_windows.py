from datetime import date, timedelta

import pytest

from candle_pipeline.domain.request_windows import RequestWindowError, request_windows
from candle_pipeline.providers.yahoo import YAHOO_WINDOW_LIMITS

TODAY = date(2025, 3, 14)


def windows(days: list[date], interval: str) -> list[tuple[date, date]]:
    return request_windows(days, interval, TODAY, YAHOO_WINDOW_LIMITS, "Yahoo")


def test_daily_bars_of_any_range_take_one_request() -> None:
    days = [date(2010, 6, 29) + timedelta(days=n) for n in range(0, 5000, 3)]
    assert windows(days, "1d") == [(days[0], days[-1])]


def test_minute_bars_are_cut_into_eight_day_requests() -> None:
    days = [TODAY - timedelta(days=n) for n in range(1, 21)]
    got = windows(days, "1m")
    assert got == [
        (date(2025, 2, 22), date(2025, 3, 1)),
        (date(2025, 3, 2), date(2025, 3, 9)),
        (date(2025, 3, 10), date(2025, 3, 13)),
    ]
    assert all((last - first).days + 1 <= 8 for first, last in got)


def test_duplicates_and_order_do_not_matter() -> None:
    day = TODAY - timedelta(days=2)
    assert windows([day, day, day - timedelta(days=1)], "5m") == [(day - timedelta(days=1), day)]


@pytest.mark.parametrize(
    ("interval", "age", "limit"),
    [("1m", 31, "last 30 days"), ("15m", 61, "last 60 days"), ("1h", 731, "last 730 days")],
)
def test_days_outside_the_window_are_an_error_naming_the_limit(
    interval: str, age: int, limit: str
) -> None:
    with pytest.raises(RequestWindowError, match=f"{interval} bars for the {limit} only"):
        windows([TODAY - timedelta(days=age)], interval)
    assert windows([TODAY - timedelta(days=age - 1)], interval)


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(RequestWindowError, match="does not serve the interval '4h'"):
        windows([TODAY], "4h")


def test_no_days_no_request() -> None:
    assert windows([], "1m") == []
