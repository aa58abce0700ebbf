"""The Yahoo provider on real recorded payloads, parsed by yfinance, checked against the JSON."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from candle_pipeline.domain.request_windows import RequestWindowError
from candle_pipeline.providers.base import ProviderError
from candle_pipeline.providers.replay import ReplayMissError
from candle_pipeline.providers.yahoo import bars_from_history
from candle_pipeline_tests.providers.yahoo_fixtures import (
    YAHOO_FIXTURES,
    at,
    recorded,
    recorded_bars,
    recorded_period_end,
    replaying_provider,
)

NVDA = "historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
TSLA = "historical-via-chart-dividends-TSLA-no-dividends.json"
AAPL_SPLIT = "chart-AAPL-2020-08-31-to-2020-11-07.json"
VALUES = ["open", "high", "low", "close", "volume", "adj_close"]
# The NVDA recording was made on this day (its answer's Date header), after both splits below.
RECORDED_ON = date(2025, 2, 22)
NVDA_SPLITS = [("2021-07-20", 4.0), ("2024-06-10", 10.0)]


def assert_bars_match_recording(bars: pd.DataFrame, name: str, zone: str) -> None:
    expected = recorded_bars(name).loc[[pd.Timestamp(day) for day in all_days(name)]]
    got = bars.set_index("trade_date")
    assert list(got.index) == list(expected.index)
    pd.testing.assert_frame_equal(
        got[VALUES], expected[VALUES], check_names=False, check_freq=False
    )
    local_midnight = got.index.tz_localize(zone).tz_convert("UTC")
    assert (got["ts"].to_numpy() == local_midnight.to_numpy()).all(), "daily bar starts at 00:00"


def all_days(name: str) -> list[date]:
    """The days of the recorded bars inside the recorded request's period (Yahoo sometimes adds
    a bar past its end, as in the 2020-01-01 .. 2020-01-03 recordings)."""
    end = datetime.fromtimestamp(recorded_period_end(name), UTC).date()
    return [day.date() for day in recorded_bars(name).index if day.date() < end]


def test_nvda_split_year_is_parsed_as_recorded() -> None:
    result = replaying_provider(clock=at(RECORDED_ON)).fetch_bars("NVDA", all_days(NVDA))
    assert len(result.bars) == 252
    assert_bars_match_recording(result.bars, NVDA, "America/New_York")
    assert set(result.bars["interval"]) == {"1d"}
    split = recorded(NVDA)["events"]["splits"]
    assert len(split) == 1
    event = next(iter(split.values()))
    assert (event["numerator"], event["denominator"]) == (4, 1)
    assert result.actions.to_dict("records") == [
        {
            "ticker": "NVDA",
            "ex_date": pd.Timestamp(ex_date),
            "dividend": pytest.approx(np.nan, nan_ok=True),
            "split_ratio": ratio,
        }
        for ex_date, ratio in NVDA_SPLITS
    ]
    assert result.split_adjusted_as_of == RECORDED_ON
    assert result.dropped == {}


def test_aapl_across_its_2020_split_with_a_dividend() -> None:
    result = replaying_provider().fetch_bars("AAPL", all_days(AAPL_SPLIT))
    assert_bars_match_recording(result.bars, AAPL_SPLIT, "America/New_York")
    actions = result.actions.set_index("ex_date")
    assert actions.loc["2020-08-31", "split_ratio"] == 4.0
    dividend = next(iter(recorded(AAPL_SPLIT)["events"]["dividends"].values()))
    assert actions.loc["2020-11-06", "dividend"] == dividend["amount"] == 0.205
    assert np.isnan(actions.loc["2020-11-06", "split_ratio"])


def test_msft_four_dividends_are_kept_with_their_amounts() -> None:
    result = replaying_provider().fetch_bars("MSFT", all_days(MSFT))
    assert_bars_match_recording(result.bars, MSFT, "America/New_York")
    events = recorded(MSFT)["events"]["dividends"].values()
    expected = {
        pd.Timestamp(datetime.fromtimestamp(e["date"], UTC).date()): e["amount"] for e in events
    }
    assert len(expected) == 4
    assert dict(zip(result.actions["ex_date"], result.actions["dividend"], strict=True)) == expected
    assert result.actions["split_ratio"].isna().all()


def test_tsla_thirteen_years_in_one_request() -> None:
    days = all_days(TSLA)
    assert len(days) == 3303
    result = replaying_provider().fetch_bars("TSLA", days)
    assert_bars_match_recording(result.bars, TSLA, "America/New_York")
    assert result.bars["trade_date"].iloc[0] == pd.Timestamp("2010-06-29")
    assert result.bars["trade_date"].iloc[-1] == pd.Timestamp("2023-08-11")
    assert result.retries == 0


@pytest.mark.parametrize(
    ("ticker", "name", "zone"),
    [
        ("OCDO.L", "chart-OCDO.L-2020-01-01-to-2020-01-03.json", "Europe/London"),
        ("AZT.OL", "chart-AZT.OL-2020-01-01-to-2020-01-03.json", "Europe/Oslo"),
        ("ORSTED.CO", "chart-ORSTED.CO-2020-01-01-to-2020-01-03.json", "Europe/Copenhagen"),
        ("WSKT.JK", "chart-WSKT.JK-2020-01-01-to-2020-01-03.json", "Asia/Jakarta"),
        ("0P000071W8.TO", "chart-0P000071W8.TO-2020-01-01-to-2020-01-03.json", "America/Toronto"),
        ("WSU.DE", "chart-WSU.DE-2023-08-04-to-2023-08-09.json", "Europe/Berlin"),
        ("BTC-USD", "chart-BTC-USD-2020-01-01-to-2020-01-03.json", "UTC"),
        ("EURUSD=X", "chart-EURUSD=X-2020-01-01-to-2020-01-03.json", "Europe/London"),
        ("GC=F", "chart-GC=F-2020-01-01-to-2020-01-03.json", "America/New_York"),
    ],
)
def test_other_exchanges_keep_their_local_session_date(ticker: str, name: str, zone: str) -> None:
    assert recorded(name)["meta"]["exchangeTimezoneName"] == zone
    result = replaying_provider().fetch_bars(ticker, all_days(name))
    assert_bars_match_recording(result.bars, name, zone)
    assert set(result.bars["ticker"]) == {ticker}


def test_jakarta_bar_starts_the_previous_evening_in_utc() -> None:
    result = replaying_provider().fetch_bars("WSKT.JK", [date(2020, 1, 2)])
    bar = result.bars.iloc[0]
    assert bar["trade_date"] == pd.Timestamp("2020-01-02")
    assert bar["ts"] == pd.Timestamp("2020-01-01 17:00", tz="UTC")


def test_bitcoin_trades_on_new_years_day() -> None:
    result = replaying_provider().fetch_bars("BTC-USD", [date(2020, 1, 1)])
    assert list(result.bars["trade_date"]) == [pd.Timestamp("2020-01-01")]
    assert (
        result.bars["close"].item()
        == recorded_bars("chart-BTC-USD-2020-01-01-to-2020-01-03.json").loc["2020-01-01", "close"]
    )
    assert result.dropped == {"outside_requested_days": 1}, "the 2020-01-02 bar, not asked for"


def test_only_the_requested_days_are_returned_and_the_rest_counted() -> None:
    """The replay answers with the whole recorded year; yfinance itself drops the one row past the
    requested end, we drop (and count) the other 249 days that were not asked for."""
    result = replaying_provider().fetch_bars("NVDA", [date(2021, 7, 19), date(2021, 7, 21)])
    assert list(result.bars["trade_date"].dt.date) == [date(2021, 7, 19), date(2021, 7, 21)]
    assert result.dropped == {"outside_requested_days": 252 - 2 - 1}
    # The split day was not asked for, but it lies between asked days; the 10:1 split comes from
    # the one request for the actions after the asked days, up to the day of the request.
    splits = result.actions[["ex_date", "split_ratio"]].to_records(index=False).tolist()
    assert [(pd.Timestamp(day).date(), ratio) for day, ratio in splits] == [
        (date.fromisoformat(day), ratio) for day, ratio in NVDA_SPLITS
    ]


def test_empty_weekend_minute_answer_is_an_error_not_an_empty_success() -> None:
    name = "chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json"
    assert "timestamp" not in recorded(name)
    assert recorded(name)["indicators"]["quote"] == [{}]
    provider = replaying_provider("1m", clock=at(date(2025, 2, 3)))
    with pytest.raises(
        ProviderError, match=r"AAPL 1m 2025-02-01\.\.2025-02-01: .*without any bars"
    ):
        provider.fetch_bars("AAPL", [date(2025, 2, 1)])


def test_minute_bars_older_than_thirty_days_are_refused_before_any_request() -> None:
    provider = replaying_provider("1m", clock=at(date(2025, 4, 1)))
    with pytest.raises(RequestWindowError, match="1m bars for the last 30 days only"):
        provider.fetch_bars("AAPL", [date(2025, 2, 3)])


def test_a_symbol_without_recording_fails_naming_what_is_recorded() -> None:
    with pytest.raises(ReplayMissError, match="nothing is recorded for ZZZZ; recorded symbols:"):
        replaying_provider().fetch_bars("ZZZZ", [date(2021, 7, 20)])


def test_days_outside_the_recording_fail_naming_the_recordings() -> None:
    with pytest.raises(ReplayMissError, match=r"no recording of NVDA at 1d covers 2020-06-01"):
        replaying_provider().fetch_bars("NVDA", [date(2020, 6, 1)])


def yfinance_frame(index: list[str], zone: str, closes: list[float]) -> pd.DataFrame:
    stamps = pd.DatetimeIndex(pd.to_datetime(index)).tz_localize(zone)
    values = np.array(closes, dtype="float64")
    return pd.DataFrame(
        {
            "Open": values,
            "High": values,
            "Low": values,
            "Close": values,
            "Adj Close": values,
            "Volume": np.where(np.isnan(values), 0, 100),
            "Dividends": 0.0,
            "Stock Splits": 0.0,
        },
        index=stamps,
    )


def test_nan_duplicate_live_and_unasked_rows_are_dropped_and_counted() -> None:
    history = yfinance_frame(
        [
            "2021-07-16 09:30",
            "2021-07-19 09:30",
            "2021-07-19 09:31",
            "2021-07-19 09:31",
            "2021-07-19 09:32",
            "2021-07-20 09:30",
        ],
        "America/New_York",
        [1.0, 2.0, 3.0, 3.5, np.nan, 4.0],
    )
    # 09:30:30 in New York: the 09:30 bar of 2021-07-20 is still forming.
    now = datetime(2021, 7, 20, 13, 30, 30, tzinfo=UTC)
    bars, actions, dropped = bars_from_history(
        history, "NVDA", "1m", [date(2021, 7, 19), date(2021, 7, 20)], now
    )
    assert list(bars["close"]) == [2.0, 3.0]
    assert list(bars["ts"]) == [
        pd.Timestamp("2021-07-19 13:30", tz="UTC"),
        pd.Timestamp("2021-07-19 13:31", tz="UTC"),
    ]
    assert dropped == {
        "outside_requested_days": 1,
        "duplicate_timestamp": 1,
        "all_nan": 1,
        "session_in_progress": 1,
    }
    assert actions.empty


@pytest.mark.parametrize(
    ("ticker", "recording", "exchange_name"),
    [
        ("NVDA", "historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json", "NMS"),
        ("OCDO.L", "chart-OCDO.L-2020-01-01-to-2020-01-03.json", "LSE"),
        ("BTC-USD", "chart-BTC-USD-2020-01-01-to-2020-01-03.json", "CCC"),
    ],
)
def test_the_answer_names_the_exchange(ticker: str, recording: str, exchange_name: str) -> None:
    result = replaying_provider().fetch_bars(ticker, all_days(recording)[:2])
    assert result.exchange_name == recorded(recording)["meta"]["exchangeName"] == exchange_name


HANDMADE = YAHOO_FIXTURES.parent / "yahoo-http-handmade"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("chart-notimestamp-quotes-length.fake.json", r"1 '\w+' value\(s\) for 0 timestamp\(s\)"),
        ("chart-notimestamp-weird-quote.fake.json", r"1 '\w+' value\(s\) for 0 timestamp\(s\)"),
    ],
)
def test_mismatched_array_lengths_are_one_clear_error(
    tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / name).write_bytes((HANDMADE / name).read_bytes())
    with pytest.raises(ProviderError, match=f"chart answer is malformed: {message}") as error:
        replaying_provider(folder=tmp_path).fetch_bars("AAPL", [date(2020, 1, 2)])
    assert "nothing is stored" in str(error.value)


def test_an_answer_with_empty_quotes_is_an_error_not_an_empty_success(tmp_path: Path) -> None:
    name = "chart-TSLA-2025-01-01-to-2025-01-02-interval-1h.fake.json"
    (tmp_path / name).write_bytes((HANDMADE / name).read_bytes())
    provider = replaying_provider(interval="1h", folder=tmp_path, clock=at(date(2025, 1, 10)))
    with pytest.raises(ProviderError, match="without any bars; nothing is stored"):
        provider.fetch_bars("TSLA", [date(2025, 1, 1)])
