"""The adjustment math: raw bars from Yahoo's split-adjusted ones, Lean factor files as actions,
and adjusted series from raw bars and the factor table, against Lean's own factors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.adjustments import (
    FACTOR_FILE_COLUMNS,
    actions_from_factor_file,
    adjust,
    adjustment_factors,
    as_of,
    factors_for_bars,
    fill_reference_closes,
    known_factors,
    unadjust_splits,
)
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR

FACTOR_FILE = SAMPLE_DATA_DIR / "lean-daily" / "factor_files" / "AAPL.csv"
DAILY_FILE = SAMPLE_DATA_DIR / "lean-daily" / "AAPL.csv"
# NVDA's splits: 4:1 effective 2021-07-20 and 10:1 effective 2024-06-10.
NVDA_SPLITS = pd.DataFrame(
    {
        "ticker": ["NVDA", "NVDA"],
        "ex_date": pd.to_datetime(["2021-07-20", "2024-06-10"]),
        "dividend": [np.nan, np.nan],
        "split_ratio": [4.0, 10.0],
    }
)
# NVDA's close of 2021-07-16 as traded, and as Yahoo served it (a 32-bit float) in 2023 (after
# the 4:1 split) and in 2025 (the recording of candle_pipeline_tests/fixtures/yahoo-http, after
# both splits). Volumes: 17,205,600 shares traded.
TRADED_CLOSE = 726.44
SERVED_2023 = float(np.float32(TRADED_CLOSE / 4))
SERVED_2025 = 18.160999298095703
TRADED_VOLUME = 17_205_600.0
CENT = 0.01


def nvda_bar(close: float, volume: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ["NVDA"],
            "trade_date": pd.to_datetime(["2021-07-16"]),
            "interval": ["1d"],
            "ts": pd.to_datetime(["2021-07-16 13:30"], utc=True),
            "open": [close],
            "high": [close],
            "low": [close],
            "close": [close],
            "volume": [volume],
        }
    )


def test_a_2021_nvda_bar_fetched_in_2023_and_in_2025_stores_the_same_raw_numbers() -> None:
    fetched_2023 = unadjust_splits(
        nvda_bar(SERVED_2023, TRADED_VOLUME * 4), NVDA_SPLITS, {"NVDA": date(2023, 5, 1)}
    )
    fetched_2025 = unadjust_splits(
        nvda_bar(SERVED_2025, TRADED_VOLUME * 40), NVDA_SPLITS, {"NVDA": date(2025, 2, 22)}
    )
    assert fetched_2025["close"].iloc[0] == TRADED_CLOSE
    assert fetched_2025["volume"].iloc[0] == TRADED_VOLUME
    pd.testing.assert_frame_equal(fetched_2023, fetched_2025)


def test_a_split_on_or_before_the_bar_leaves_it_alone() -> None:
    after_split = nvda_bar(726.44, 100.0).assign(trade_date=pd.to_datetime(["2024-06-10"]))
    raw = unadjust_splits(after_split, NVDA_SPLITS, {"NVDA": date(2025, 2, 22)})
    assert raw["close"].iloc[0] == 726.44
    assert raw["volume"].iloc[0] == 100.0


def test_bars_of_a_ticker_not_adjusted_by_its_provider_stay_as_they_are() -> None:
    bar = nvda_bar(SERVED_2025, TRADED_VOLUME)
    pd.testing.assert_frame_equal(
        unadjust_splits(bar, NVDA_SPLITS, {"AAPL": date(2025, 1, 2)}), bar
    )


def lean_actions() -> pd.DataFrame:
    factors = pd.read_csv(FACTOR_FILE, names=list(FACTOR_FILE_COLUMNS))
    sessions = pd.DatetimeIndex(pd.read_csv(DAILY_FILE, parse_dates=["date"])["date"])
    return actions_from_factor_file(factors, "AAPL", sessions)


def test_lean_factor_file_becomes_aapls_splits_and_dividends() -> None:
    actions = lean_actions().set_index("ex_date")
    splits = actions["split_ratio"].dropna()
    assert splits.to_dict() == {
        pd.Timestamp("2000-06-21"): 2.0,
        pd.Timestamp("2005-02-28"): 2.0,
        pd.Timestamp("2014-06-09"): 7.0,
        pd.Timestamp("2020-08-31"): 4.0,
    }
    dividends = actions["dividend"].dropna()
    # AAPL's first dividend (2012-08-09, $2.65 before the 7:1 split) and one after the 4:1 one.
    assert dividends[pd.Timestamp("2012-08-09")] == pytest.approx(2.65, abs=CENT)
    assert dividends[pd.Timestamp("2020-11-06")] == pytest.approx(0.205, abs=CENT)
    assert actions.loc[pd.Timestamp("2014-06-09"), "reference_close"] == 645.57


def test_adjusted_closes_equal_leans_own_factors_on_every_day() -> None:
    factors = pd.read_csv(FACTOR_FILE, names=list(FACTOR_FILE_COLUMNS))
    factors["date"] = pd.to_datetime(factors["date"].astype(str), format="%Y%m%d")
    bars = pd.read_csv(DAILY_FILE, parse_dates=["date"]).rename(columns={"date": "trade_date"})
    bars["ticker"] = "AAPL"
    table = adjustment_factors(
        lean_actions().assign(first_seen=pd.Timestamp("2021-04-01", tz="UTC"))
    )

    # Lean: a row's factors hold for the dates up to and including its own.
    lean = pd.merge_asof(
        bars.sort_values("trade_date"),
        factors,
        left_on="trade_date",
        right_on="date",
        direction="forward",
    )
    split_adjusted = adjust(bars, table, "splits")["close"]
    total_return = adjust(bars, table, "all")["close"]
    np.testing.assert_allclose(split_adjusted, lean["close"] * lean["split_factor"], atol=CENT)
    np.testing.assert_allclose(
        total_return, lean["close"] * lean["split_factor"] * lean["price_factor"], atol=CENT
    )


def test_as_of_ignores_actions_not_yet_known() -> None:
    seen = pd.Timestamp("2014-06-20", tz="UTC")
    table = adjustment_factors(lean_actions().assign(first_seen=seen))
    bar = nvda_bar(645.57, 100.0).assign(ticker="AAPL", trade_date=pd.to_datetime(["2014-06-06"]))
    before_split = factors_for_bars(bar, as_of(table, date(2014, 6, 6)))
    seen_yet = factors_for_bars(bar, as_of(table, date(2014, 6, 19)))
    after = factors_for_bars(bar, as_of(table, date(2014, 6, 20)))
    assert before_split["price_factor"].iloc[0] == 1.0
    assert seen_yet["price_factor"].iloc[0] == 1.0
    # The 7:1 split and the 4:1 one of 2020 are known on the first-seen day only; as of
    # 2014-06-20 the 2020 split has not happened yet.
    assert after["price_factor"].iloc[0] == pytest.approx(7.0)
    assert factors_for_bars(bar, table)["price_factor"].iloc[0] == pytest.approx(28.0)


def test_fresh_actions_renew_the_factors_of_their_ticker_only() -> None:
    seen = pd.Timestamp("2014-06-20", tz="UTC")
    stored_actions = lean_actions().assign(first_seen=seen)
    aapl_until_2014 = stored_actions[stored_actions["ex_date"] <= pd.Timestamp("2014-12-31")]
    nvda = NVDA_SPLITS.assign(reference_close=np.nan, first_seen=seen)
    stored = pd.concat([aapl_until_2014, nvda], ignore_index=True)
    stored_factors = adjustment_factors(stored)
    bar = nvda_bar(645.57, 100.0).assign(ticker="AAPL", trade_date=pd.to_datetime(["2014-06-06"]))
    assert factors_for_bars(bar, stored_factors)["price_factor"].iloc[0] == pytest.approx(7.0)

    fresh = lean_actions()
    renewed = known_factors(stored_factors, stored, fresh)
    assert factors_for_bars(bar, renewed)["price_factor"].iloc[0] == pytest.approx(28.0)
    renewed_nvda = renewed[renewed["ticker"] == "NVDA"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        renewed_nvda, stored_factors[stored_factors["ticker"] == "NVDA"].reset_index(drop=True)
    )
    assert known_factors(stored_factors, stored, fresh.iloc[0:0]) is stored_factors


def test_a_dividend_without_reference_takes_the_last_close_before_its_ex_date() -> None:
    actions = pd.DataFrame(
        {
            "ticker": ["MSFT", "MSFT"],
            "ex_date": pd.to_datetime(["2021-05-19", "2021-08-18"]),
            "dividend": [0.56, 0.56],
            "split_ratio": [np.nan, np.nan],
            "reference_close": [np.nan, 290.0],
        }
    )
    closes = pd.DataFrame(
        {
            "ticker": ["MSFT"] * 3,
            "trade_date": pd.to_datetime(["2021-05-17", "2021-05-18", "2021-05-19"]),
            "close": [245.18, 243.08, 243.12],
        }
    )
    filled = fill_reference_closes(actions, closes)
    assert filled["reference_close"].tolist() == [243.08, 290.0]
