from datetime import date

import pandas as pd

from candle_pipeline.domain.bars import stamp
from candle_pipeline.domain.quality import FLAG_COLUMNS, quality_report, validate_quotes
from candle_pipeline.domain.sessions import ExchangeDirectory, market_timings
from candle_pipeline.providers.csv_files import CsvProvider
from candle_pipeline.settings import SAMPLE_DATA_DIR

XNYS = ExchangeDirectory(default="XNYS", by_ticker={})


def raw_day(ticker: str, day: date) -> pd.DataFrame:
    bars = CsvProvider(SAMPLE_DATA_DIR).fetch_bars(ticker, [day]).bars
    return stamp(bars, "csv", pd.Timestamp("2026-01-01", tz="UTC"))


def test_a_real_day_keeps_every_row_and_tags_sessions() -> None:
    raw = raw_day("SPY", date(2013, 10, 7))
    validated = validate_quotes(
        raw, market_timings(["XNYS"], date(2013, 10, 7), date(2013, 10, 7)), XNYS
    )
    assert len(validated) == len(raw)
    report = quality_report(validated)
    assert report.session_counts["regular"] == 390
    assert report.session_counts["pre"] + report.session_counts["post"] == len(raw) - 390
    assert report.valid_rows == report.rows


def test_broken_rows_are_flagged_not_dropped() -> None:
    raw = raw_day("IBM", date(2013, 10, 7))
    raw.loc[0, "close"] = float("nan")
    raw.loc[1, ["high", "low"]] = [1.0, 2.0]
    raw.loc[2, "open"] = -1.0
    raw.loc[3, "volume"] = -5.0
    timings = market_timings(["XNYS"], date(2013, 10, 7), date(2013, 10, 7))
    validated = validate_quotes(raw, timings, XNYS)
    assert len(validated) == len(raw)
    flagged = validated.loc[:3, list(FLAG_COLUMNS)]
    assert flagged.loc[0, "flag_missing"]
    assert flagged.loc[1, "flag_ohlc"]
    assert flagged.loc[2, "flag_price"]
    assert flagged.loc[3, "flag_volume"]
    assert not validated.loc[:3, "is_valid"].any()
    assert validated.loc[4:, "is_valid"].all()
    assert quality_report(validated).flag_counts["missing"] == 1
