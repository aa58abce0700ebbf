"""The synthetic provider: deterministic, calendar-true, plausible, and labelled synthetic."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.bars import BAR_COLUMNS, BAR_DTYPES, check_bars
from candle_pipeline.domain.candles import aggregate
from candle_pipeline.domain.quality import validate_quotes
from candle_pipeline.domain.sessions import ExchangeDirectory, attach_sessions, market_timings
from candle_pipeline.partitions import days_per_run
from candle_pipeline.providers.synthetic import SyntheticProvider, ticker_profile
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import (
    DAILY_BARS_DAYS_PER_RUN,
    INTRADAY_BARS_DAYS_PER_RUN,
    Settings,
    SettingsError,
)

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
    ).quotes
    assert set(tagged["session"]) == {"regular"}
    assert tagged["is_valid"].all(), "synthetic bars pass every quality rule"


def test_daily_bars_summarise_the_minute_bars_of_the_same_day() -> None:
    days = [MONDAY + timedelta(days=offset) for offset in range(5)]
    daily = SyntheticProvider("1d").fetch_bars("XOM", days).bars
    minutes = minute("XOM", days)
    timings = market_timings(["XNYS"], days[0], days[-1])
    candles = aggregate(attach_sessions(minutes, timings, DIRECTORY), ["1d"])
    assert len(daily) == len(candles) == 5
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(daily[column], candles[column], err_msg=column)
    assert (daily["ts"].dt.tz_convert("America/New_York").dt.hour == 0).all()


def test_prices_and_volumes_are_plausible_over_decades() -> None:
    days = [date(2000, 1, 3) + timedelta(days=offset) for offset in range(0, 25 * 365, 3)]
    for ticker in ("AAPL", "BRK-B", "T", "ZZZZ"):
        bars = SyntheticProvider("1d").fetch_bars(ticker, days).bars
        assert bars["low"].min() >= 1, ticker
        assert bars["high"].max() <= 10_000, ticker
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        assert (bars["volume"] > 0).all()
        daily = (
            SyntheticProvider("1d")
            .fetch_bars(
                ticker, [date(2020, 1, 1) + timedelta(days=offset) for offset in range(730)]
            )
            .bars
        )
        realised = np.log(daily["close"]).diff().std() * np.sqrt(252)
        assert 0.5 < realised / ticker_profile(ticker).annual_volatility < 1.5, ticker


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
