import pandas as pd
import pytest

from candle_pipeline.domain.bars import (
    BAR_COLUMNS,
    STORED_RAW_COLUMNS,
    BarsError,
    check_bars,
    empty_bars,
    raw_quotes,
)


def bars(**overrides: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ticker": "SPY",
            "trade_date": pd.Timestamp("2013-10-07"),
            "interval": "1m",
            "ts": pd.to_datetime(["2013-10-07 13:30", "2013-10-07 13:31"], utc=True),
            "open": [1.0, 2.0],
            "high": [1.0, 2.0],
            "low": [1.0, 2.0],
            "close": [1.0, 2.0],
            "volume": [10, 20],
        }
    )
    return frame.assign(**overrides)


def test_good_bars_come_back_typed() -> None:
    checked = check_bars(bars(), "test")
    assert list(checked.columns) == list(BAR_COLUMNS)
    assert checked["volume"].dtype == "float64"


def test_missing_column() -> None:
    with pytest.raises(BarsError, match=r"test: missing column.*volume"):
        check_bars(bars().drop(columns="volume"), "test")


def test_text_where_numbers_belong() -> None:
    with pytest.raises(BarsError, match=r"column close holds 1 value.*.abc."):
        check_bars(bars(close=["1.5", "abc"]), "test")


def test_naive_timestamps() -> None:
    with pytest.raises(BarsError, match="time zone"):
        check_bars(bars(ts=pd.to_datetime(["2013-10-07 13:30", "2013-10-07 13:31"])), "test")


def test_duplicated_and_unsorted_rows() -> None:
    same = pd.to_datetime(["2013-10-07 13:30", "2013-10-07 13:30"], utc=True)
    with pytest.raises(BarsError, match="2 rows share a timestamp"):
        check_bars(bars(ts=same), "test")
    backwards = pd.to_datetime(["2013-10-07 13:31", "2013-10-07 13:30"], utc=True)
    with pytest.raises(BarsError, match="not in time order"):
        check_bars(bars(ts=backwards), "test")


def test_one_interval_per_ticker_day() -> None:
    with pytest.raises(BarsError, match="mixes bar intervals"):
        check_bars(bars(interval=["1m", "1d"]), "test")


def test_each_fetch_stamps_its_own_rows_even_around_an_empty_one() -> None:
    times = [pd.Timestamp(f"2026-01-0{day} 12:00", tz="UTC") for day in (1, 2, 3)]
    first = check_bars(bars(), "test")
    third = check_bars(bars(ticker="IBM"), "test").assign(adj_close=[0.9, 1.9])
    raw = raw_quotes([first, empty_bars(), third], times, "csv")
    assert list(raw.columns) == list(STORED_RAW_COLUMNS)
    assert raw["fetched_at"].tolist() == [times[0], times[0], times[2], times[2]]
    assert raw["fetched_at"].dtype == "datetime64[ns, UTC]"
    assert set(raw["source"]) == {"csv"}
    assert raw["adj_close"].isna().tolist() == [True, True, False, False]


def test_a_run_that_fetched_nothing_stores_no_rows() -> None:
    raw = raw_quotes([], [], "csv")
    assert raw.empty and list(raw.columns) == list(STORED_RAW_COLUMNS)
