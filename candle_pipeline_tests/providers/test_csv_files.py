from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from candle_pipeline.domain.bars import BarsError
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR, CsvProvider

SPY_MINUTE = SAMPLE_DATA_DIR / "lean-minute" / "SPY" / "2013-10-07.csv"


def test_minute_file_is_read_as_is() -> None:
    result = CsvProvider(SAMPLE_DATA_DIR).fetch_bars("SPY", [date(2013, 10, 7)])
    source = pd.read_csv(SPY_MINUTE)
    assert result.requests == 2, "the minute file and SPY's factor file"
    assert len(result.bars) == len(source)
    assert (result.bars["interval"] == "1m").all()
    assert result.bars["ts"].iloc[0] == pd.Timestamp(source["ts"].iloc[0])
    assert result.bars["close"].tolist() == source["close"].tolist()


def test_days_without_minute_file_fall_back_to_the_daily_bar() -> None:
    result = CsvProvider(SAMPLE_DATA_DIR).fetch_bars("SPY", [date(2013, 9, 30), date(2013, 10, 1)])
    assert result.requests == 2, "the daily file and SPY's factor file"
    assert list(result.bars["interval"]) == ["1d", "1d"]
    first = result.bars.iloc[0]
    assert first["ts"] == pd.Timestamp("2013-09-30 00:00", tz="America/New_York")
    daily = pd.read_csv(SAMPLE_DATA_DIR / "lean-daily" / "SPY.csv").set_index("date")
    assert first["close"] == daily.loc["2013-09-30", "close"]


def test_unknown_ticker_gives_no_bars() -> None:
    result = CsvProvider(SAMPLE_DATA_DIR).fetch_bars("ZZZZ", [date(2013, 10, 7)])
    assert result.bars.empty
    assert result.requests == 0


def write_day(root: Path, text: str) -> CsvProvider:
    folder = root / "lean-minute" / "SPY"
    folder.mkdir(parents=True)
    (folder / "2013-10-07.csv").write_text(text)
    return CsvProvider(root)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ts,open,high,low,close\n2013-10-07T13:30:00Z,1,1,1,1\n", "missing column.*volume"),
        ("ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,x,1,1,5\n", "column high"),
        ("ts,open,high,low,close,volume\nyesterday,1,1,1,1,5\n", "column ts"),
        (
            "ts,open,high,low,close,volume\n2013-10-07T13:31:00Z,1,1,1,1,5\n"
            "2013-10-07T13:30:00Z,1,1,1,1,5\n",
            "not in time order",
        ),
        (
            "ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,1,1,1,5\n"
            "2013-10-07T13:30:00Z,1,1,1,1,5\n",
            "share a timestamp",
        ),
        ("ts,open,high,low,close,volume\n2013-10-08T13:30:00Z,1,1,1,1,5\n", "outside 2013-10-07"),
    ],
)
def test_bad_files_are_refused_naming_file_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    provider = write_day(tmp_path, text)
    with pytest.raises(BarsError, match=message) as error:
        provider.fetch_bars("SPY", [date(2013, 10, 7)])
    assert "2013-10-07.csv" in str(error.value)


def test_the_factor_file_gives_the_tickers_splits_and_dividends() -> None:
    result = CsvProvider(SAMPLE_DATA_DIR).fetch_bars("AAPL", [date(2014, 6, 9)])
    assert result.requests == 2, "the minute file and the factor file"
    actions = result.actions.set_index("ex_date")
    split = actions.loc[pd.Timestamp("2014-06-09")]
    assert split["split_ratio"] == 7.0
    assert split["reference_close"] == 645.57
    assert actions["split_ratio"].notna().sum() == 4
    assert (actions["currency"] == "USD").all()
    assert actions.loc[pd.Timestamp("2014-05-08"), "dividend"] == pytest.approx(3.29, abs=0.01)


def test_an_unreadable_factor_file_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "lean-daily" / "factor_files"
    folder.mkdir(parents=True)
    (folder / "SPY.csv").write_text("not,a,factor,file\n")
    with pytest.raises(BarsError, match=r"SPY\.csv: not a Lean factor file"):
        CsvProvider(tmp_path).fetch_bars("SPY", [date(2013, 10, 7)])
