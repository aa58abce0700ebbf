"""Corrupted copies of real days through real Dagster runs on the real PostgreSQL.

The sample's own days (clean, AAPL's split day, GOOG's early close) are checked in
test_pipeline.py on its `sample` warehouse.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster._core.event_api import PartitionKeyFilter

from candle_pipeline import runs
from candle_pipeline.domain.ticker_days import BLOCKED, COMPLETE, FAILED
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.conftest import create_database, definitions_for, table, watch
from candle_pipeline_tests.quality import corrupt
from candle_pipeline_tests.quality.records import (
    VALIDATED,
    evaluations,
    latest_evaluations,
    quality_reports,
)

# Four bad SPY days between two good ones, and AIG's frozen quarter hour (a warning, not a
# block), all in one run.
BAD_DAYS = {
    "2013-10-07": corrupt.nan_hour,
    "2013-10-08": corrupt.high_low_swapped,
    "2013-10-09": corrupt.jump_60_percent,
    "2013-10-10": corrupt.third_removed,
}
WEEK = (date(2013, 10, 4), date(2013, 10, 11))
# The README's table of scores: the holdout figures of the quality rules.
README_SCORES = {
    "2013-10-07": 0.7848,
    "2013-10-08": 0.0,
    "2013-10-09": 0.4981,
    "2013-10-10": 0.6667,
}
AIG_STALE_SCORE = 0.9273


class Pipeline:
    """A warehouse on a CSV folder, the real definitions wired to it and a Dagster instance."""

    def __init__(self, url: str, csv_dir: Path, instance: dg.DagsterInstance) -> None:
        self.url = url
        self.csv_dir = csv_dir
        self.defs = definitions_for(url, csv_dir)
        self.instance = instance
        watch(url, ["SPY", "AIG"], WEEK[0])

    def materialize(self, start: date, end: date, **kwargs: object) -> runs.RunOutcome:
        outcomes = runs.materialize(self.defs, self.instance, start, end, **kwargs)
        assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes]
        return outcomes[-1]

    def query(self, text: str) -> pd.DataFrame:
        with engine_for(self.url).connect() as conn:
            return pd.read_sql(sa.text(text), conn)

    def states(self) -> pd.DataFrame:
        frame = table(self.url, "ticker_days")
        return frame.set_index(frame["trade_date"].astype(str) + "|" + frame["ticker"])

    def freshness(self, as_of: str) -> dg.AssetCheckEvaluation:
        result = self.defs.resolve_job_def("candles_freshness_job").execute_in_process(
            instance=self.instance,
            run_config={"ops": {"candles_freshness": {"config": {"as_of": as_of}}}},
        )
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation


def corrupted_copy(root: Path) -> Path:
    csv_dir = root / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    corrupt.copy_ticker(csv_dir, "AIG")
    for day, corruption in BAD_DAYS.items():
        corrupt.write_day(csv_dir, "SPY", day, corruption(corrupt.read_day("SPY", day)))
    stale = corrupt.stale_quarter_hour(corrupt.read_day("AIG", "2013-10-11"))
    corrupt.write_day(csv_dir, "AIG", "2013-10-11", stale)
    return csv_dir


@pytest.fixture
def corrupted_week(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> Pipeline:
    return Pipeline(create_database(pg_server, "warehouse"), corrupted_copy(tmp_path), instance)


def test_bad_days_are_blocked_exactly_and_the_good_ones_of_the_same_run_get_candles(
    corrupted_week: Pipeline,
) -> None:
    pipeline = corrupted_week
    pipeline.materialize(*WEEK)
    bad_keys = {f"{day}|SPY" for day in BAD_DAYS}

    # validated_quotes keeps every raw row of every day, bad ones included.
    counts = pipeline.query(
        "SELECT r.ticker, r.trade_date, count(*) AS raw, "
        "(SELECT count(*) FROM market.validated_quotes v WHERE v.ticker = r.ticker "
        " AND v.trade_date = r.trade_date) AS validated "
        "FROM market.raw_quotes r GROUP BY r.ticker, r.trade_date"
    )
    assert len(counts) == 12
    assert (counts["raw"] == counts["validated"]).all()

    states = pipeline.states()
    assert set(states.index[states["status"] == BLOCKED]) == bad_keys
    for day, score in README_SCORES.items():
        row = states.loc[f"{day}|SPY"]
        assert row["quality_score"] == pytest.approx(score, abs=1e-4), day
        assert row["last_error"] == f"quality score {row['quality_score']:.4f} < threshold 0.8"
    assert states.loc["2013-10-11|AIG", "quality_score"] == pytest.approx(AIG_STALE_SCORE, abs=1e-4)
    assert states.loc["2013-10-11|AIG", "status"] == COMPLETE

    reports = quality_reports(pipeline.url)
    assert reports.loc["2013-10-07|SPY", "missing_rows"] == 60
    assert reports.loc["2013-10-08|SPY", "ohlc_rows"] > 0
    assert reports.loc["2013-10-09|SPY", "regular_spikes"] == 1
    assert reports.loc["2013-10-10|SPY", "gap_bars"] == 130

    candle_days = pipeline.query("SELECT DISTINCT ticker, trade_date FROM market.candles")
    with_candles = set(candle_days["trade_date"].astype(str) + "|" + candle_days["ticker"])
    assert with_candles == set(states.index[states["status"] == COMPLETE])

    gate = latest_evaluations(pipeline.instance, "quality_score")
    failing = {day for day, evaluation in gate.items() if not evaluation.passed}
    assert failing == set(BAD_DAYS)
    jump = gate["2013-10-09"]
    assert jump.severity == dg.AssetCheckSeverity.ERROR
    assert jump.metadata["offending_ticker_days"].value == "SPY 0.4981"
    assert jump.metadata["quality_score_min"].value == pytest.approx(0.4981, abs=1e-4)
    assert jump.description == "1 of 2 scored ticker-day(s) below 0.8: SPY 0.4981"

    # The warnings, one per run, over the run's days.
    warnings = {
        name: evaluations(pipeline.instance, name) for name in ("spikes", "gaps", "stale_runs")
    }
    assert {name: len(found) for name, found in warnings.items()} == {
        "spikes": 1,
        "gaps": 1,
        "stale_runs": 1,
    }, "one run: the week"
    offending = {
        name: sorted(e.metadata["offending_ticker_days"].value for e in found if not e.passed)
        for name, found in warnings.items()
    }
    assert offending == {
        "spikes": ["SPY 2013-10-09 (1)"],
        "stale_runs": ["AIG 2013-10-11 (15)"],
        "gaps": ["SPY 2013-10-07 (1), SPY 2013-10-08 (1), SPY 2013-10-10 (1), AIG 2013-10-11 (1)"],
    }
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in warnings["spikes"])

    # Freshness sees the gate: the blocked Thursday is not fresh, the good Friday is.
    thursday = pipeline.freshness("2013-10-10T23:00:00+00:00")
    assert not thursday.passed
    assert thursday.metadata["offending_ticker_days"].value == "SPY 2013-10-10"
    friday = pipeline.freshness("2013-10-12T12:00:00+00:00")
    assert friday.passed, friday.description

    # Once the provider's data is repaired, the day's next run passes the gate: a blocked
    # ticker-day is fetched again, the complete AIG of the same day is not.
    corrupt.write_day(pipeline.csv_dir, "SPY", "2013-10-09", corrupt.read_day("SPY", "2013-10-09"))
    aig = pipeline.query(
        "SELECT fetched_at FROM market.raw_quotes WHERE ticker = 'AIG' "
        "AND trade_date = '2013-10-09' LIMIT 1"
    )
    pipeline.materialize(date(2013, 10, 9), date(2013, 10, 9))
    assert pipeline.states().loc["2013-10-09|SPY", "status"] == COMPLETE
    assert pipeline.query(
        "SELECT fetched_at FROM market.raw_quotes WHERE ticker = 'AIG' "
        "AND trade_date = '2013-10-09' LIMIT 1"
    ).equals(aig)
    history = pipeline.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(VALIDATED, "quality_score"),
        limit=5,
        partition_filter=PartitionKeyFilter(key="2013-10-09"),
    )
    assert [record.status.value for record in history] == ["SUCCEEDED", "FAILED"]


def test_a_bad_refetch_keeps_the_good_candles_of_a_ticker_day(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    corrupt.copy_ticker(csv_dir, "AIG")
    pipeline = Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)
    day = date(2013, 10, 9)
    pipeline.materialize(day, day)
    good = table(pipeline.url, "candles")

    jumped = corrupt.jump_60_percent(corrupt.read_day("SPY", "2013-10-09"))
    corrupt.write_day(csv_dir, "SPY", "2013-10-09", jumped)
    pipeline.materialize(day, day, refetch=True)
    states = pipeline.states()
    assert states.loc["2013-10-09|SPY", "status"] == BLOCKED
    assert states.loc["2013-10-09|AIG", "status"] == COMPLETE, "one bad ticker blocks nothing else"
    pd.testing.assert_frame_equal(table(pipeline.url, "candles"), good)
    raw = table(pipeline.url, "raw_quotes")
    stored = raw.loc[raw["ticker"] == "SPY", "close"].to_numpy()
    sent = pd.read_csv(
        csv_dir / corrupt.MINUTE_DIR / "SPY" / "2013-10-09.csv", float_precision="round_trip"
    )
    assert stored.tolist() == sent["close"].tolist(), "raw quotes are what was sent this time"


def test_duplicated_timestamps_fail_that_ticker_and_store_the_others(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """raw_quotes keys bars by (ticker, interval, ts): a provider's repeated timestamps are
    refused, naming the file and the first repeated time; the other ticker is stored."""
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    corrupt.copy_ticker(csv_dir, "AIG")
    doubled = corrupt.duplicated_timestamps(corrupt.read_day("SPY", "2013-10-08"))
    corrupt.write_day(csv_dir, "SPY", "2013-10-08", doubled)
    pipeline = Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)

    pipeline.materialize(date(2013, 10, 7), date(2013, 10, 8))
    states = pipeline.states()
    spy = states[states["ticker"] == "SPY"]
    assert set(spy["status"]) == {FAILED}
    assert (
        spy["last_error"]
        .str.contains(
            "2013-10-08.csv: 10 rows share a timestamp (first: 2013-10-08T14:00:00+00:00)",
            regex=False,
        )
        .all()
    )
    assert set(states.loc[states["ticker"] == "AIG", "status"]) == {COMPLETE}
    assert set(table(pipeline.url, "raw_quotes")["ticker"]) == {"AIG"}

    coverage = latest_evaluations(pipeline.instance, "coverage", dg.AssetKey("raw_quotes"))
    assert coverage["2013-10-08"].metadata["offending_ticker_days"].value == "SPY (failed)"
