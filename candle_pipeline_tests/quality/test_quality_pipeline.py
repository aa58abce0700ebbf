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
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import engine_for, ensure_tables
from candle_pipeline.tickers import register
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import create_database, definitions_for
from candle_pipeline_tests.quality import corrupt
from candle_pipeline_tests.quality.records import (
    CANDLES,
    VALIDATED,
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
BAD_KEYS = {f"{day}|SPY" for day in BAD_DAYS}
WEEK = (date(2013, 10, 4), date(2013, 10, 11))


class Pipeline:
    """A warehouse on a CSV folder, the real definitions wired to it and a Dagster instance."""

    def __init__(self, url: str, csv_dir: Path, instance: dg.DagsterInstance) -> None:
        self.url = url
        self.csv_dir = csv_dir
        self.defs = definitions_for(url, csv_dir)
        self.instance = instance

    def materialize(self, tickers: list[str], start: date, end: date) -> runs.RunOutcome:
        """One run of the per-ticker assets (after market_timings, which must succeed), for
        tickers on the watch list."""
        ensure_tables(self.url)
        with engine_for(self.url).begin() as connection:
            watchlist.add(connection, [watchlist.NewTicker(t) for t in tickers], "XNYS")
        register(self.instance, tickers)
        timings, per_ticker = runs.materialize(self.defs, self.instance, tickers, start, end)
        assert timings.success, timings.error
        return per_ticker

    def query(self, text: str) -> pd.DataFrame:
        with engine_for(self.url).connect() as conn:
            return pd.read_sql(sa.text(text), conn)

    def materialized(self, asset: dg.AssetKey) -> set[str]:
        return self.instance.get_materialized_partitions(asset)

    def freshness(self, as_of: str) -> dg.AssetCheckEvaluation:
        result = self.defs.resolve_job_def("candles_freshness_job").execute_in_process(
            instance=self.instance,
            run_config={"ops": {"candles_freshness": {"config": {"as_of": as_of}}}},
        )
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation


def week_keys(*tickers: str) -> set[str]:
    return {f"{day.isoformat()}|{ticker}" for day in runs.day_range(*WEEK) for ticker in tickers}


@pytest.fixture
def corrupted_week(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> Pipeline:
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    corrupt.copy_ticker(csv_dir, "AIG")
    for day, corruption in BAD_DAYS.items():
        corrupt.write_day(csv_dir, "SPY", day, corruption(corrupt.read_day("SPY", day)))
    stale = corrupt.stale_quarter_hour(corrupt.read_day("AIG", "2013-10-11"))
    corrupt.write_day(csv_dir, "AIG", "2013-10-11", stale)
    return Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)


def test_bad_days_are_blocked_exactly_and_good_days_of_the_same_run_get_candles(
    corrupted_week: Pipeline,
) -> None:
    pipeline = corrupted_week
    outcome = pipeline.materialize(["SPY", "AIG"], *WEEK)
    all_keys = week_keys("SPY", "AIG")

    assert not outcome.success
    assert "4 ticker-day(s) blocked by the quality gate (threshold 0.8)" in outcome.error
    assert all(key in outcome.error for key in BAD_KEYS)

    # validated_quotes keeps every raw row of every day, bad ones included.
    counts = pipeline.query(
        "SELECT r.ticker, r.trade_date, count(*) AS raw, "
        "(SELECT count(*) FROM market.validated_quotes v WHERE v.ticker = r.ticker "
        " AND v.trade_date = r.trade_date) AS validated "
        "FROM market.raw_quotes r GROUP BY r.ticker, r.trade_date"
    )
    assert len(counts) == 12
    assert (counts["raw"] == counts["validated"]).all()
    assert pipeline.materialized(VALIDATED) == all_keys

    reports = quality_reports(pipeline.url)
    scored = reports[reports["status"] == "scored"]
    assert set(scored.index[~scored["passed"]]) == BAD_KEYS
    assert scored.loc[sorted(BAD_KEYS), "score"].max() < 0.8
    assert scored.drop(index=sorted(BAD_KEYS))["score"].min() > 0.9
    assert reports.loc["2013-10-07|SPY", "missing_rows"] == 60
    assert reports.loc["2013-10-08|SPY", "ohlc_rows"] > 0
    assert reports.loc["2013-10-09|SPY", "regular_spikes"] == 1
    assert reports.loc["2013-10-10|SPY", "gap_bars"] == 130

    # candles: no rows and no materialisation for exactly the bad days.
    candle_days = pipeline.query("SELECT DISTINCT ticker, trade_date FROM market.candles")
    with_candles = set(candle_days["trade_date"].astype(str) + "|" + candle_days["ticker"])
    assert with_candles == set(scored.index) - BAD_KEYS
    assert pipeline.materialized(CANDLES) == all_keys - BAD_KEYS
    observations = pipeline.instance.fetch_observations(CANDLES, limit=10).records
    assert {record.partition_key for record in observations} == BAD_KEYS
    assert all(
        "< threshold 0.8" in record.asset_observation.metadata["reason"].value
        for record in observations
    )

    gate = latest_evaluations(pipeline.instance, "quality_score")
    assert set(gate) == all_keys
    assert {key for key, evaluation in gate.items() if not evaluation.passed} == BAD_KEYS
    jump = gate["2013-10-09|SPY"]
    assert jump.severity == dg.AssetCheckSeverity.ERROR
    assert jump.metadata["quality_score"].value == pytest.approx(0.4981, abs=1e-4)

    warnings = {
        name: latest_evaluations(pipeline.instance, name)[None]
        for name in ("spikes", "gaps", "stale_runs")
    }
    assert not any(evaluation.passed for evaluation in warnings.values())
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in warnings.values())
    assert warnings["spikes"].metadata["offending_partitions"].value == "2013-10-09|SPY"
    assert warnings["stale_runs"].metadata["offending_partitions"].value == "2013-10-11|AIG"
    assert warnings["gaps"].metadata["gaps"].value == 4
    assert warnings["gaps"].metadata["offending_partitions"].value == (
        "2013-10-07|SPY, 2013-10-08|SPY, 2013-10-10|SPY, 2013-10-11|AIG"
    )

    # Freshness sees the gate: the blocked Thursday is not fresh, the good Friday is.
    thursday = pipeline.freshness("2013-10-10T23:00:00+00:00")
    assert not thursday.passed
    assert thursday.metadata["offending_partitions"].value == "2013-10-10|SPY"
    friday = pipeline.freshness("2013-10-12T12:00:00+00:00")
    assert friday.passed, friday.description

    # Once the provider's data is repaired, the day's next run passes the gate.
    corrupt.write_day(pipeline.csv_dir, "SPY", "2013-10-09", corrupt.read_day("SPY", "2013-10-09"))
    assert pipeline.materialize(["SPY"], date(2013, 10, 9), date(2013, 10, 9)).success
    assert pipeline.materialized(CANDLES) == all_keys - BAD_KEYS | {"2013-10-09|SPY"}
    history = pipeline.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(VALIDATED, "quality_score"),
        limit=5,
        partition_filter=PartitionKeyFilter(key="2013-10-09|SPY"),
    )
    assert [record.status.value for record in history] == ["SUCCEEDED", "FAILED"]


def test_duplicated_timestamps_are_refused_at_ingestion_and_the_run_stores_nothing(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """raw_quotes keys bars by (ticker, interval, ts): a provider's repeated timestamps are
    refused, naming the file and the first repeated time, and the run writes nothing."""
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    doubled = corrupt.duplicated_timestamps(corrupt.read_day("SPY", "2013-10-08"))
    corrupt.write_day(csv_dir, "SPY", "2013-10-08", doubled)
    pipeline = Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)

    outcome = pipeline.materialize(["SPY"], date(2013, 10, 7), date(2013, 10, 8))
    assert not outcome.success
    assert outcome.error.startswith("raw_quotes: ")
    assert "2013-10-08.csv: 10 rows share a timestamp (first: 2013-10-08T14:00:00+00:00)" in (
        outcome.error
    )
    for asset in ("raw_quotes", "validated_quotes", "candles"):
        assert pipeline.query(f"SELECT count(*) AS n FROM market.{asset}")["n"].item() == 0
        assert pipeline.materialized(dg.AssetKey(asset)) == set()

    assert pipeline.materialize(["SPY"], date(2013, 10, 7), date(2013, 10, 7)).success
    assert pipeline.materialized(CANDLES) == {"2013-10-07|SPY"}
