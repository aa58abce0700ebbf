"""The synthetic provider: deterministic, calendar-true, plausible, and labelled synthetic."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.bars import BAR_COLUMNS, BAR_DTYPES, check_bars
from candle_pipeline.domain.candles import aggregate
from candle_pipeline.domain.quality import validate_quotes
from candle_pipeline.domain.sessions import ExchangeDirectory, attach_sessions, market_timings
from candle_pipeline.partitions import (
    DAILY_BARS_DAYS_PER_RUN,
    INTRADAY_BARS_DAYS_PER_RUN,
    days_per_run,
)
from candle_pipeline.providers.synthetic import SyntheticProvider, daily_bars, ticker_profile
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import Settings, SettingsError

# Thursday before Thanksgiving 2024, Thanksgiving (closed), the early close after it, a Saturday,
# and an ordinary Monday.
WEEK = [date(2024, 11, 27), date(2024, 11, 28), date(2024, 11, 29), date(2024, 11, 30)]
MONDAY = date(2024, 12, 2)
DIRECTORY = ExchangeDirectory(default="XNYS", by_ticker={})


def minute(ticker: str, days: list[date]) -> pd.DataFrame:
    return SyntheticProvider("1m").fetch_bars(ticker, days).bars


def test_bars_are_canonical_and_pass_the_structural_checks() -> None:
    for interval in ("1m", "1d"):
        bars = SyntheticProvider(interval).fetch_bars("MSFT", [*WEEK, MONDAY]).bars
        assert tuple(bars.columns) == BAR_COLUMNS
        assert bars.dtypes.to_dict() == {column: BAR_DTYPES[column] for column in BAR_COLUMNS}
        pd.testing.assert_frame_equal(check_bars(bars, "synthetic"), bars)


def test_the_same_ticker_and_day_always_give_the_same_bars() -> None:
    together = minute("AAPL", [*WEEK, MONDAY])
    alone = minute("AAPL", [MONDAY])
    monday = together[together["trade_date"] == pd.Timestamp(MONDAY)].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, monday)
    pd.testing.assert_frame_equal(minute("AAPL", [MONDAY]), alone)
    assert not np.array_equal(minute("IBM", [MONDAY])["close"], alone["close"])


def test_sessions_follow_the_exchange_calendar() -> None:
    bars = minute("SPY", [*WEEK, MONDAY])
    per_day = bars.groupby("trade_date").size().to_dict()
    assert per_day == {
        pd.Timestamp("2024-11-27"): 390,
        pd.Timestamp("2024-11-29"): 210,
        pd.Timestamp("2024-12-02"): 390,
    }
    timings = market_timings(["XNYS"], WEEK[0], MONDAY)
    tagged = validate_quotes(
        bars.assign(source="synthetic", fetched_at=pd.Timestamp.now("UTC")).astype(
            {"fetched_at": "datetime64[ns, UTC]"}
        ),
        timings,
        DIRECTORY,
        QualityResource().rules(),
    ).quotes
    assert set(tagged["session"]) == {"regular"}
    assert tagged["is_valid"].all(), "synthetic bars pass every quality rule"


def test_daily_bars_share_open_close_and_volume_with_the_minute_bars_of_the_same_day() -> None:
    days = [MONDAY + timedelta(days=offset) for offset in range(5)]
    daily = SyntheticProvider("1d").fetch_bars("XOM", days).bars
    minutes = minute("XOM", days)
    timings = market_timings(["XNYS"], days[0], days[-1])
    candles = aggregate(attach_sessions(minutes, timings, DIRECTORY), ["1d"])
    assert len(daily) == len(candles) == 5
    for column in ("open", "close"):
        np.testing.assert_array_equal(daily[column], candles[column], err_msg=column)
    # The day and each of its minutes are rounded to whole shares.
    rounding = (minutes.groupby("trade_date").size().to_numpy() + 1) / 2
    assert (np.abs(daily["volume"] - candles["volume"]) <= rounding).all()
    assert (daily["ts"].dt.tz_convert("America/New_York").dt.hour == 0).all()


def test_daily_ranges_are_on_the_scale_of_the_minute_paths() -> None:
    days = [date(2023, 1, 2) + timedelta(days=offset) for offset in range(120)]
    ratios = []
    for ticker in ("AAPL", "BRK-B", "T", "ZZZZ"):
        daily = daily_bars([ticker], days)
        per_day = (
            minute(ticker, days).groupby("trade_date").agg(high=("high", "max"), low=("low", "min"))
        )
        ratios.append(
            np.log(per_day["high"] / per_day["low"]).mean()
            / np.log(daily["high"] / daily["low"]).mean()
        )
    assert 0.8 < np.mean(ratios) < 1.25, ratios


def test_any_slice_of_days_gives_the_same_daily_bars() -> None:
    days = [date(2000, 1, 3) + timedelta(days=offset) for offset in range(26 * 365)]
    whole = SyntheticProvider("1d").fetch_bars("AAPL", days).bars
    year = [day for day in days if day.year == 2013]
    shuffled = [*reversed(year), *year[:10]]
    part = SyntheticProvider("1d").fetch_bars("AAPL", shuffled).bars
    expected = whole[whole["trade_date"].dt.year == 2013].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)
    together = daily_bars(["AAPL", "IBM"], year)
    pd.testing.assert_frame_equal(together.iloc[: len(part)], part)
    ibm = together.iloc[len(part) :].reset_index(drop=True)
    pd.testing.assert_frame_equal(ibm, SyntheticProvider("1d").fetch_bars("IBM", year).bars)


def test_daily_bars_follow_the_exchange_calendar() -> None:
    days = [date(2024, 1, 1) + timedelta(days=offset) for offset in range(366)]
    timings = market_timings(["XNYS"], days[0], days[-1])
    sessions = timings.loc[timings["is_open"], "session_date"].reset_index(drop=True)
    bars = SyntheticProvider("1d").fetch_bars("SPY", days).bars
    pd.testing.assert_series_equal(bars["trade_date"], sessions, check_names=False)
    assert pd.Timestamp("2024-11-29") in set(bars["trade_date"]), "early closes have a bar"


def test_minute_bars_skip_lunch_breaks() -> None:
    days = [date(2024, 3, 4) + timedelta(days=offset) for offset in range(7)]
    bars = SyntheticProvider("1m", mic="XHKG").fetch_bars("0700", days).bars
    timings = market_timings(["XHKG"], days[0], days[-1]).set_index("session_date")
    per_day = bars.groupby("trade_date").size()
    expected = timings.loc[per_day.index, "expected_minute_bars"]
    assert per_day.to_dict() == expected.to_dict()
    local = bars["ts"].dt.tz_convert("Asia/Hong_Kong")
    assert not (local.dt.hour == 12).any(), "no bars in the 12:00-13:00 lunch break"
    assert bars["ts"].is_monotonic_increasing


def test_prices_and_volumes_are_plausible_over_decades() -> None:
    days = [date(2000, 1, 3) + timedelta(days=offset) for offset in range(0, 25 * 365, 3)]
    for ticker in ("AAPL", "BRK-B", "T", "ZZZZ"):
        bars = SyntheticProvider("1d").fetch_bars(ticker, days).bars
        assert bars["low"].min() >= 1, ticker
        assert bars["high"].max() <= 10_000, ticker
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        assert (bars["volume"] > 0).all()
        assert (bars["volume"] == np.round(bars["volume"])).all(), "whole shares"
        daily = (
            SyntheticProvider("1d")
            .fetch_bars(
                ticker, [date(2020, 1, 1) + timedelta(days=offset) for offset in range(730)]
            )
            .bars
        )
        profile = ticker_profile(ticker)
        realised = np.log(daily["close"]).diff().std() * np.sqrt(252)
        assert 0.5 < realised / profile.annual_volatility < 1.5, ticker
        # A Brownian path's mean range is about 1.6 times its standard deviation.
        day_range = np.log(daily["high"] / daily["low"]).mean()
        assert 1.2 < day_range / np.sqrt(profile.intraday_variance) < 2.2, ticker


def test_closed_days_only_give_no_bars_and_unknown_intervals_are_refused() -> None:
    result = SyntheticProvider("1m").fetch_bars("SPY", [date(2024, 11, 28), date(2024, 11, 30)])
    assert result.bars.empty
    assert result.requests == 1
    assert SyntheticProvider("1m").fetch_bars("SPY", []).requests == 0
    with pytest.raises(ValueError, match="1m or 1d"):
        SyntheticProvider("5m")


def test_the_source_is_labelled_synthetic(tmp_path) -> None:
    # The synthetic source never touches the warehouse (no rate limit): its URL is never used.
    unused = WarehouseResource(database_url="postgresql://unused.invalid/none")
    resource = MarketDataResource(source="synthetic", csv_dir=str(tmp_path), warehouse=unused)
    fetched = resource.fetch_all({"SPY": [MONDAY], "IBM": [MONDAY, MONDAY + timedelta(days=1)]})
    assert set(fetched.bars["source"]) == {"synthetic"}
    assert fetched.bars.groupby("ticker").size().to_dict() == {"SPY": 390, "IBM": 780}
    assert {ticker: result.requests for ticker, result in fetched.results.items()} == {
        "SPY": 1,
        "IBM": 1,
    }
    assert fetched.failures == {}
    spy = fetched.bars["ticker"] == "SPY"
    assert fetched.bars.loc[spy, "fetched_at"].max() <= fetched.bars.loc[~spy, "fetched_at"].min()
    assert fetched.bars["adj_close"].isna().all(), "the synthetic source has no adjusted close"


def test_settings_select_the_source_interval_and_the_days_per_backfill_run() -> None:
    daily = Settings.from_env({"CANDLE_SOURCE": "synthetic", "CANDLE_SYNTHETIC_INTERVAL": "1d"})
    assert (daily.source, daily.synthetic_interval) == ("synthetic", "1d")
    assert daily.backfill_days_per_run is None
    assert days_per_run(daily) == DAILY_BARS_DAYS_PER_RUN == 366
    minute = Settings.from_env({"CANDLE_SOURCE": "synthetic"})
    assert days_per_run(minute) == INTRADAY_BARS_DAYS_PER_RUN == 5
    chosen = Settings.from_env(
        {"CANDLE_SOURCE": "synthetic", "CANDLE_BACKFILL_DAYS_PER_RUN": "500"}
    )
    assert days_per_run(chosen) == chosen.backfill_days_per_run == 500
    with pytest.raises(SettingsError, match="CANDLE_SYNTHETIC_INTERVAL"):
        Settings.from_env({"CANDLE_SYNTHETIC_INTERVAL": "5m"})
    with pytest.raises(SettingsError, match="CANDLE_BACKFILL_DAYS_PER_RUN"):
        Settings.from_env({"CANDLE_BACKFILL_DAYS_PER_RUN": "0"})
