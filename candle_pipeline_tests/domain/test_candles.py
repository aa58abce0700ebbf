import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.candles import CANDLE_COLUMNS, aggregate

OPEN = pd.Timestamp("2013-10-07 13:30", tz="UTC")


def minute_bars(minutes: int, ticker: str = "SPY", open_utc: pd.Timestamp = OPEN) -> pd.DataFrame:
    ts = open_utc + pd.to_timedelta(np.arange(minutes), unit="min")
    prices = 100 + np.arange(minutes, dtype=float)
    return pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": pd.Timestamp(open_utc.date()),
            "interval": "1m",
            "ts": ts,
            "open": prices,
            "high": prices + 0.5,
            "low": prices - 0.5,
            "close": prices + 0.25,
            "volume": np.full(minutes, 10.0),
            "open_utc": open_utc,
        }
    )


def test_full_session_gives_the_expected_number_of_candles() -> None:
    candles = aggregate(minute_bars(390))
    counts = candles.groupby("interval").size().to_dict()
    assert counts == {"5m": 78, "15m": 26, "30m": 13, "1h": 7, "1d": 1}
    assert list(candles.columns) == list(CANDLE_COLUMNS)


def test_hour_buckets_are_anchored_at_the_session_open() -> None:
    hourly = aggregate(minute_bars(390), ["1h"])
    assert hourly["ts"].iloc[0] == OPEN
    assert hourly["ts"].iloc[1] == OPEN + pd.Timedelta(hours=1)
    assert list(hourly["bar_count"]) == [60] * 6 + [30]


def test_ohlcv_of_a_bucket() -> None:
    bars = minute_bars(390)
    first = aggregate(bars, ["15m"]).iloc[0]
    window = bars.iloc[:15]
    assert first["open"] == window["open"].iloc[0]
    assert first["close"] == window["close"].iloc[-1]
    assert first["high"] == window["high"].max()
    assert first["low"] == window["low"].min()
    assert first["volume"] == window["volume"].sum()
    assert first["bar_count"] == 15


def test_many_tickers_in_any_order_are_kept_apart() -> None:
    bars = pd.concat([minute_bars(390, "SPY"), minute_bars(390, "IBM")]).sample(
        frac=1, random_state=1
    )
    daily = aggregate(bars, ["1d"]).set_index("ticker")
    assert set(daily.index) == {"SPY", "IBM"}
    assert (daily["bar_count"] == 390).all()
    assert (daily["open"] == 100.0).all()
    assert (daily["close"] == 100 + 389 + 0.25).all()


def test_daily_bars_give_only_the_daily_candle() -> None:
    daily_bar = minute_bars(1).assign(interval="1d", ts=pd.Timestamp("2013-10-07 04:00", tz="UTC"))
    candles = aggregate(daily_bar)
    assert list(candles["interval"]) == ["1d"]
    assert candles["ts"].iloc[0] == OPEN


def test_empty_input_and_unknown_interval() -> None:
    assert aggregate(minute_bars(0)).empty
    with pytest.raises(ValueError, match="7m"):
        aggregate(minute_bars(5), ["7m"])
