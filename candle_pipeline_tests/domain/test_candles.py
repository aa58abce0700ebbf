import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.candles import CANDLE_COLUMNS, CANDLE_DTYPES, aggregate

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
    assert counts == {"5m": 78, "15m": 26, "30m": 13, "1h": 7, "4h": 2, "1d": 1}
    assert list(candles.columns) == list(CANDLE_COLUMNS)


def test_hour_buckets_are_anchored_at_the_session_open() -> None:
    hourly = aggregate(minute_bars(390), ["1h"])
    assert hourly["ts"].iloc[0] == OPEN
    assert hourly["ts"].iloc[1] == OPEN + pd.Timedelta(hours=1)
    assert list(hourly["bar_count"]) == [60] * 6 + [30]


def test_four_hour_candles_start_at_the_open_and_end_at_the_close() -> None:
    four_hourly = aggregate(minute_bars(390), ["4h"])
    assert four_hourly["ts"].tolist() == [OPEN, OPEN + pd.Timedelta(hours=4)]
    assert four_hourly["bar_count"].tolist() == [240, 150]


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
    empty = aggregate(minute_bars(0))
    assert empty.empty
    assert empty.dtypes.to_dict() == aggregate(minute_bars(5)).dtypes.to_dict(), "same shape"
    with pytest.raises(ValueError, match="7m"):
        aggregate(minute_bars(5), ["7m"])


def reference_candles(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Candles by a plain pandas groupby over every bar at most as wide as the interval."""
    widths = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}
    usable = bars[bars["interval"].map(widths) <= widths[interval]].sort_values(["ticker", "ts"])
    if interval == "1d":
        bucket = usable["open_utc"]
    else:
        width = pd.Timedelta(seconds=widths[interval])
        bucket = usable["open_utc"] + (usable["ts"] - usable["open_utc"]) // width * width
    grouped = usable.assign(bucket=bucket).groupby(["ticker", "bucket"], sort=True)
    return grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        bar_count=("close", "size"),
    ).reset_index()


def test_coarse_intervals_built_from_finer_ones_equal_a_direct_groupby() -> None:
    """Tickers, days, 1m, 5m and daily bars mixed and shuffled; one ticker-day has a lunch-like
    gap. Every interval must equal a groupby of the raw bars, whatever it was reduced from."""
    rng = np.random.default_rng(7)
    second_open = pd.Timestamp("2013-10-08 13:30", tz="UTC")
    frames = [
        minute_bars(390, "SPY"),
        minute_bars(390, "SPY", second_open),
        minute_bars(210, "IBM"),
        minute_bars(390, "BRK-B").drop(index=range(120, 180)),
        minute_bars(78, "AIG").iloc[::5].assign(interval="5m"),
        minute_bars(1, "BAC", second_open).assign(
            interval="1d", ts=pd.Timestamp("2013-10-08 04:00", tz="UTC")
        ),
    ]
    bars = pd.concat(frames, ignore_index=True)
    bars[["open", "high", "low", "close", "volume"]] *= rng.uniform(0.5, 1.5, (len(bars), 1))
    shuffled = bars.sample(frac=1, random_state=3)
    candles = aggregate(shuffled)
    for interval in ("5m", "15m", "30m", "1h", "4h", "1d"):
        got = (
            candles[candles["interval"] == interval]
            .sort_values(["ticker", "ts"])
            .reset_index(drop=True)
        )
        expected = reference_candles(bars, interval)
        assert got["ticker"].tolist() == expected["ticker"].tolist(), interval
        assert got["ts"].tolist() == expected["bucket"].tolist(), interval
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[column], expected[column], err_msg=interval)
        assert got["bar_count"].tolist() == expected["bar_count"].tolist(), interval
    assert set(candles[candles["ticker"] == "BAC"]["interval"]) == {"1d"}


def test_candles_carry_the_trade_date_of_their_bars() -> None:
    second_open = pd.Timestamp("2013-10-08 13:30", tz="UTC")
    bars = pd.concat([minute_bars(30, "SPY"), minute_bars(30, "SPY", second_open)])
    candles = aggregate(bars, ["15m", "1d"])
    by_day = candles.groupby("trade_date")["ts"].agg(["min", "max"])
    assert by_day.loc[pd.Timestamp("2013-10-07"), "max"] < second_open
    assert by_day.loc[pd.Timestamp("2013-10-08"), "min"] == second_open
    assert candles.dtypes.to_dict() == CANDLE_DTYPES
