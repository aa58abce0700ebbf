"""Validation and scoring on real minute data: clean days, AAPL's split day, corrupted copies."""

from datetime import date

import exchange_calendars as xcals
import pandas as pd
import pandera.errors
import pytest

from candle_pipeline.domain.adjustments import (
    FACTOR_FILE_COLUMNS,
    actions_from_factor_file,
    adjustment_factors,
)
from candle_pipeline.domain.bars import stamp_fetches
from candle_pipeline.domain.quality import (
    FLAG_COLUMNS,
    STATUS_CLOSED,
    QualityRules,
    Validation,
    assess,
    flagged_rows,
    validate_quotes,
)
from candle_pipeline.domain.schemas import CandlesSchema, ValidatedQuotesSchema
from candle_pipeline.domain.sessions import ExchangeDirectory, market_timings
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR, CsvProvider
from candle_pipeline_tests.quality import corrupt

XNYS = ExchangeDirectory(default="XNYS", by_ticker={})
# The quality resource's default thresholds.
RULES = QualityRules(threshold=0.8, spike_threshold=0.5)
TIMINGS = market_timings(["XNYS"], date(2013, 10, 1), date(2015, 12, 31))
FACTOR_FILES = SAMPLE_DATA_DIR / "lean-daily" / "factor_files"
SPLIT_DAY = date(2014, 6, 9)
FIRST_SEEN = pd.Timestamp("2026-01-01", tz="UTC")


def raw_days(ticker: str, *days: date) -> pd.DataFrame:
    bars = CsvProvider(SAMPLE_DATA_DIR).fetch_bars(ticker, list(days)).bars
    return stamp_fetches([bars], [pd.Timestamp("2026-01-01", tz="UTC")], "csv")


def validate(raw: pd.DataFrame, **kwargs: object) -> Validation:
    validation = validate_quotes(raw, TIMINGS, XNYS, RULES, **kwargs)
    ValidatedQuotesSchema.validate(validation.quotes)
    return validation


def quality_of(validation: Validation, ticker: str, *days: date) -> pd.Series | pd.DataFrame:
    """The report of `ticker` on each of `days` (a row, or a frame indexed by day), with the
    gate's decision (`passed`) and its gaps as (start, bars) pairs (`gap_list`)."""
    keys = pd.DataFrame({"ticker": ticker, "trade_date": pd.to_datetime(list(days))})
    assessment = assess(validation, TIMINGS, XNYS, keys, RULES)
    found = assessment.gaps.groupby(assessment.gaps["trade_date"].dt.date)
    gap_lists = {day: list(zip(gaps["start"], gaps["bars"], strict=True)) for day, gaps in found}
    reports = assessment.reports.assign(passed=assessment.passed(RULES.threshold))
    reports.index = reports["trade_date"].dt.date
    reports["gap_list"] = [gap_lists.get(day, []) for day in reports.index]
    return reports.iloc[0] if len(days) == 1 else reports


def split_actions(ticker: str) -> pd.DataFrame:
    """The splits of Lean's factor file (its dividends left out)."""
    factors = pd.read_csv(FACTOR_FILES / f"{ticker}.csv", names=list(FACTOR_FILE_COLUMNS))
    calendar = xcals.get_calendar("XNYS", start=pd.Timestamp("1998-01-02"))
    actions = actions_from_factor_file(factors, ticker, calendar.sessions)
    return actions[actions["split_ratio"].notna()].assign(dividend=None)


def split_factors(ticker: str) -> pd.DataFrame:
    """The adjustment factor table of the splits of Lean's factor file."""
    return adjustment_factors(split_actions(ticker).assign(first_seen=FIRST_SEEN))


def previous_close(ticker: str, day: date) -> pd.DataFrame:
    last = raw_days(ticker, day).iloc[-1]
    return pd.DataFrame(
        {"ticker": [ticker], "trade_date": [last["trade_date"]], "close": [last["close"]]}
    )


def test_the_factor_file_gives_aapls_7_for_1_split_on_2014_06_09() -> None:
    actions = split_actions("AAPL")
    split = actions[actions["ex_date"] == pd.Timestamp(SPLIT_DAY)]
    assert split["split_ratio"].tolist() == [7.0]


def test_a_clean_day_keeps_every_row_tags_sessions_and_scores_one() -> None:
    raw = raw_days("SPY", date(2013, 10, 7))
    validation = validate(raw)
    quotes = validation.quotes
    assert len(quotes) == len(raw)
    assert quotes["is_valid"].all()
    assert (quotes["session"] == "regular").sum() == 390
    assert set(quotes["session"]) == {"pre", "regular", "post"}
    report = quality_of(validation, "SPY", date(2013, 10, 7))
    assert (report["expected_bars"], report["usable_bars"], report["gap_list"]) == (390, 390, [])
    assert (report["completeness"], report["validity"], report["consistency"]) == (1.0, 1.0, 1.0)
    assert report["score"] == 1.0


def test_the_early_close_expects_210_bars_and_is_not_a_gap() -> None:
    validation = validate(raw_days("GOOG", date(2015, 12, 24)))
    report = quality_of(validation, "GOOG", date(2015, 12, 24))
    assert (report["expected_bars"], report["usable_bars"]) == (210, 210)
    assert report["gap_list"] == []
    assert report["score"] == 1.0
    after_close = validation.quotes["ts"] >= pd.Timestamp("2015-12-24 18:00", tz="UTC")
    assert set(validation.quotes.loc[after_close, "session"]) == {"post"}


def test_quiet_minutes_lower_completeness_but_are_not_gaps() -> None:
    """GOOG 2015-12-28 has 8 regular minutes without a trade, none adjacent."""
    report = quality_of(validate(raw_days("GOOG", date(2015, 12, 28))), "GOOG", date(2015, 12, 28))
    assert (report["expected_bars"], report["usable_bars"]) == (390, 382)
    assert report["gap_list"] == []
    assert report["score"] == pytest.approx(382 / 390)
    assert report["score"] >= 0.95


def test_every_sample_day_scores_at_least_095() -> None:
    days = {
        "SPY": [date(2013, 10, d) for d in (4, 7, 8, 9, 10, 11)],
        "IBM": [date(2013, 10, d) for d in (4, 7, 8, 9, 10, 11)],
        "GOOG": [date(2015, 12, 23), date(2015, 12, 24), date(2015, 12, 28)],
        "AAPL": [date(2014, 6, 5), date(2014, 6, 6), SPLIT_DAY],
    }
    for ticker, open_days in days.items():
        reports = quality_of(validate(raw_days(ticker, *open_days)), ticker, *open_days)
        scores = reports["score"].round(4).to_dict()
        assert min(scores.values()) >= 0.95, (ticker, scores)


def test_aapls_stale_pre_split_print_is_the_one_flagged_row_on_the_split_day() -> None:
    """08:00 UTC on 2014-06-09 opens at 645.57, the pre-split price, seven times the new one."""
    validation = validate(
        raw_days("AAPL", SPLIT_DAY),
        factors=split_factors("AAPL"),
        previous_closes=previous_close("AAPL", date(2014, 6, 6)),
    )
    flagged = validation.quotes[~validation.quotes["is_valid"]]
    assert len(flagged) == 1
    row = flagged.iloc[0]
    assert row["ts"] == pd.Timestamp("2014-06-09 08:00", tz="UTC")
    assert (row["session"], row["open"]) == ("pre", 645.57)
    assert row[list(FLAG_COLUMNS)].sum() == 1 and row["flag_spike"]
    # Neither reference explains it: the bar opens at the old price and closes at the new one.
    shown = flagged_rows(validation, "spike", 5).iloc[0]
    assert shown["reference"] == 645.70
    assert shown["move"] == pytest.approx(1 - 92.23 / 645.70)

    report = quality_of(validation, "AAPL", SPLIT_DAY)
    assert report["regular_spikes"] == 0
    assert report["spike_rows"] == 1
    assert report["score"] == pytest.approx(833 / 834)


def test_the_split_explains_the_overnight_move_and_nothing_else_does() -> None:
    """The regular session alone: its first bar is 1/7 of the last close of 2014-06-06."""
    raw = raw_days("AAPL", SPLIT_DAY)
    regular_only = raw[raw["ts"] >= pd.Timestamp("2014-06-09 13:30", tz="UTC")]
    before = previous_close("AAPL", date(2014, 6, 6))

    explained = validate(regular_only, factors=split_factors("AAPL"), previous_closes=before)
    assert explained.quotes["is_valid"].all()
    assert quality_of(explained, "AAPL", SPLIT_DAY).score == 1.0

    unexplained = validate(regular_only, previous_closes=before)
    assert unexplained.quotes["flag_spike"].sum() == 1
    report = quality_of(unexplained, "AAPL", SPLIT_DAY)
    assert (report["regular_spikes"], report["consistency"]) == (1, 0.5)
    assert not report["passed"]


def test_a_feed_already_adjusted_for_the_split_needs_no_explanation() -> None:
    """Yahoo-style history: the days before the split come divided by the ratio."""
    before = previous_close("AAPL", date(2014, 6, 6)).assign(close=645.70 / 7)
    raw = raw_days("AAPL", SPLIT_DAY)
    regular_only = raw[raw["ts"] >= pd.Timestamp("2014-06-09 13:30", tz="UTC")]
    validation = validate(regular_only, factors=split_factors("AAPL"), previous_closes=before)
    assert validation.quotes["is_valid"].all()
    assert validation.reference.iloc[0] == pytest.approx(645.70 / 7)


def test_a_wild_print_is_caught_without_any_previous_close() -> None:
    validation = validate(raw_days("AAPL", SPLIT_DAY))
    assert validation.quotes.loc[0, "flag_spike"]
    assert validation.quotes["flag_spike"].sum() == 1


def corrupted(ticker: str, day: date, corruption: corrupt.Corruption):
    raw = raw_days(ticker, day)
    broken = corruption(raw).reset_index(drop=True)
    validation = validate(broken)
    return broken, validation, quality_of(validation, ticker, day)


def test_an_hour_of_nan_rows_is_flagged_kept_and_scored_below_the_threshold() -> None:
    broken, validation, report = corrupted("SPY", date(2013, 10, 7), corrupt.nan_hour)
    assert len(validation.quotes) == len(broken)
    assert report["missing_rows"] == 60
    assert report["usable_bars"] == 330
    assert [bars for _, bars in report["gap_list"]] == [60]
    assert report["gap_list"][0][0] == pd.Timestamp("2013-10-07 17:00", tz="UTC")
    assert report["score"] == pytest.approx((330 / 390) * ((len(broken) - 60) / len(broken)))
    assert not report["passed"]


def test_swapped_high_and_low_fail_ohlc_integrity() -> None:
    broken, _, report = corrupted("SPY", date(2013, 10, 8), corrupt.high_low_swapped)
    ranged = (broken["high"] != broken["low"]).sum()
    assert report["ohlc_rows"] == ranged
    assert report["score"] < 0.2


def test_a_60_percent_jump_is_one_regular_spike_and_halves_consistency() -> None:
    _, validation, report = corrupted("SPY", date(2013, 10, 9), corrupt.jump_60_percent)
    spike = flagged_rows(validation, "spike", 5)
    assert len(spike) == 1
    assert spike.iloc[0]["ts"] == pd.Timestamp("2013-10-09 16:00", tz="UTC")
    assert spike.iloc[0]["move"] == pytest.approx(0.6, abs=0.01)
    assert (report["regular_spikes"], report["consistency"]) == (1, 0.5)
    assert report["score"] < RULES.threshold


def test_a_third_of_the_minutes_removed_is_a_130_bar_gap() -> None:
    _, _, report = corrupted("SPY", date(2013, 10, 10), corrupt.third_removed)
    assert (report["expected_bars"], report["usable_bars"]) == (390, 260)
    assert report["gap_list"] == [(pd.Timestamp("2013-10-10 15:00", tz="UTC"), 130)]
    assert report["score"] == pytest.approx(2 / 3)


def test_a_frozen_quarter_hour_is_a_stale_run_and_a_warning_not_a_block() -> None:
    _, validation, report = corrupted("AIG", date(2013, 10, 11), corrupt.stale_quarter_hour)
    assert report["stale_rows"] == 15
    assert validation.quotes["flag_stale"].sum() == 15
    assert report["passed"]


def test_row_rules_flag_and_keep_broken_rows() -> None:
    raw = raw_days("IBM", date(2013, 10, 7))
    raw.loc[0, "close"] = float("nan")
    raw.loc[1, ["high", "low"]] = [1.0, 2.0]
    raw.loc[2, "open"] = -1.0
    raw.loc[3, "volume"] = -5.0
    raw.loc[4, "ts"] = pd.Timestamp("2013-10-08 05:00", tz="UTC")  # 01:00 next day in New York
    quotes = validate(raw).quotes
    assert len(quotes) == len(raw)
    expected = ["flag_missing", "flag_ohlc", "flag_price", "flag_volume", "flag_outside_day"]
    for position, flag in enumerate(expected):
        assert quotes.loc[position, flag], flag
    assert not quotes.loc[:4, "is_valid"].any()
    assert quotes.loc[5:, "is_valid"].all()


def test_closed_and_empty_days() -> None:
    validation = validate(raw_days("SPY", date(2013, 10, 4)))
    friday, saturday, monday = (
        row
        for _, row in quality_of(
            validation, "SPY", date(2013, 10, 4), date(2013, 10, 5), date(2013, 10, 7)
        ).iterrows()
    )
    assert friday["score"] == 1.0
    assert (saturday["status"], saturday["expected_bars"]) == (STATUS_CLOSED, 0)
    assert pd.isna(saturday["score"])
    assert saturday["passed"]
    assert (monday["rows"], monday["expected_bars"], monday["score"]) == (0, 390, 0.0)
    assert [bars for _, bars in monday["gap_list"]] == [390]


def test_the_contracts_refuse_inconsistent_frames() -> None:
    quotes = validate(raw_days("SPY", date(2013, 10, 7))).quotes
    quotes.loc[0, "is_valid"] = False
    with pytest.raises(pandera.errors.SchemaError, match="valid_means_unflagged"):
        ValidatedQuotesSchema.validate(quotes)
    candle = pd.DataFrame(
        {
            "ticker": ["SPY"],
            "trade_date": pd.to_datetime(["2013-10-07"]),
            "interval": ["5m"],
            "ts": pd.to_datetime(["2013-10-07 13:30"], utc=True),
            "open": [168.0],
            "high": [167.0],
            "low": [168.5],
            "close": [168.2],
            "volume": [100.0],
            "bar_count": [5],
        }
    )
    with pytest.raises(pandera.errors.SchemaError, match="ohlc_consistent"):
        CandlesSchema.validate(candle)
