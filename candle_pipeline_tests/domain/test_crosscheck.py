"""Cross-checking two sources' daily bars: plain pandas, no database, no Dagster."""

from datetime import date

import pandas as pd
import pytest

from candle_pipeline.domain.crosscheck import compare_closes, daily_ohlcv, mismatches
from candle_pipeline.domain.routing import reference_chain

TOLERANCE = 0.005


def bars(source: str, rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    """Bars of (ticker, day, ts, close, volume), open/high/low around the close."""
    return pd.DataFrame(
        [
            {
                "ticker": ticker,
                "trade_date": pd.Timestamp(day),
                "interval": "1m",
                "ts": pd.Timestamp(ts, tz="UTC"),
                "open": close - 0.5,
                "high": close + 1.0,
                "low": close - 1.0,
                "close": close,
                "volume": volume,
                "source": source,
            }
            for ticker, day, ts, close, volume in rows
        ]
    )


def test_a_day_of_minute_bars_is_its_first_open_extremes_last_close_and_summed_volume() -> None:
    minutes = bars(
        "yahoo",
        [
            ("AAPL", "2014-06-06", "2014-06-06 19:59", 645.0, 300.0),
            ("AAPL", "2014-06-06", "2014-06-06 13:30", 650.0, 100.0),
            ("AAPL", "2014-06-06", "2014-06-06 15:00", 660.0, 200.0),
        ],
    )
    [day] = daily_ohlcv(minutes).to_dict("records")
    assert day == {
        "ticker": "AAPL",
        "trade_date": date(2014, 6, 6),
        "source": "yahoo",
        "open": 649.5,
        "high": 661.0,
        "low": 644.0,
        "close": 645.0,
        "volume": 600.0,
    }


def test_closes_within_the_tolerance_agree_and_one_beyond_is_a_mismatch_naming_both() -> None:
    checked = daily_ohlcv(
        bars(
            "csv",
            [
                ("AAPL", "2005-04-01", "2005-04-01 05:00", 41.718, 1.0),
                ("IBM", "2005-04-01", "2005-04-01 05:00", 90.40, 1.0),
            ],
        )
    )
    reference = daily_ohlcv(
        bars(
            "polygon",
            [
                ("AAPL", "2005-04-01", "2005-04-01 20:00", 40.90, 1.0),
                ("IBM", "2005-04-01", "2005-04-01 20:00", 90.36, 1.0),
            ],
        )
    )
    comparison = compare_closes(checked, reference, TOLERANCE)
    assert comparison["compared"].all()
    assert comparison.set_index("ticker")["difference"].round(4).to_dict() == {
        "AAPL": 0.02,
        "IBM": 0.0004,
    }
    [mismatch] = mismatches(comparison)
    assert (mismatch.ticker, mismatch.trade_date) == ("AAPL", date(2005, 4, 1))
    assert (mismatch.source, mismatch.close) == ("csv", 41.718)
    assert (mismatch.reference_source, mismatch.reference_close) == ("polygon", 40.90)
    assert mismatch.describe() == (
        "AAPL 2005-04-01: close 41.718 from csv, 40.9 from polygon (2.00% apart)"
    )


def test_a_day_the_reference_has_no_bar_for_is_not_compared_and_no_mismatch() -> None:
    checked = daily_ohlcv(
        bars(
            "csv",
            [
                ("AAPL", "2005-04-01", "2005-04-01 05:00", 40.90, 1.0),
                ("AAPL", "2005-04-04", "2005-04-04 04:00", 41.08, 1.0),
            ],
        )
    )
    reference = daily_ohlcv(bars("polygon", [("AAPL", "2005-04-04", "2005-04-04 20:00", 41.08, 1)]))
    comparison = compare_closes(checked, reference, TOLERANCE)
    assert comparison["compared"].tolist() == [False, True]
    assert comparison["difference"].tolist()[1] == 0.0
    assert not comparison["mismatch"].any()


def test_a_zero_reference_close_against_a_price_is_a_mismatch() -> None:
    checked = daily_ohlcv(bars("csv", [("X", "2020-01-02", "2020-01-02 05:00", 1.0, 1.0)]))
    reference = daily_ohlcv(bars("yahoo", [("X", "2020-01-02", "2020-01-02 05:00", 0.0, 1.0)]))
    assert [m.ticker for m in mismatches(compare_closes(checked, reference, TOLERANCE))] == ["X"]


def test_a_tolerance_of_zero_or_less_is_refused() -> None:
    empty = daily_ohlcv(bars("csv", []))
    with pytest.raises(ValueError, match="greater than 0"):
        compare_closes(empty, empty, 0.0)


def test_the_reference_is_the_first_source_of_the_chain_neither_serving_nor_failing() -> None:
    chain = ["yahoo", "csv", "polygon"]
    assert reference_chain(chain, ["csv"]) == ["yahoo", "polygon"]
    assert reference_chain(chain, ["csv", "yahoo"]) == ["polygon"]
    assert reference_chain(["ccxt", "yahoo"], ["ccxt:binance"]) == ["yahoo"]
    assert reference_chain(["csv"], ["csv"]) == []
