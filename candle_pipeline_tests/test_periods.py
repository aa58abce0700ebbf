"""Weekly and monthly candles end to end (real PostgreSQL, real Dagster runs): IBM's daily bars of
the bundled sample around Independence Day 2014, one day of them made bad by hand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.warehouse.partition_store import qualified
from candle_pipeline.warehouse.tables import period_candles
from candle_pipeline_tests.conftest import (
    create_database,
    definitions_for,
    postgres_instance,
    table,
    watch,
)
from candle_pipeline_tests.quality.corrupt import copy_daily
from candle_pipeline_tests.quality.records import partition_metadata

pytestmark = pytest.mark.integration

# Monday 2014-06-30 to Sunday 2014-07-13: Friday 07-04 is a holiday; 07-09 is made bad.
FIRST_DAY, LAST_DAY = date(2014, 6, 30), date(2014, 7, 13)
HOLIDAY_WEEK = pd.Timestamp("2014-06-30")
BLOCKED_WEEK = pd.Timestamp("2014-07-07")
BAD_DAY = "2014-07-09"
# The moment the runs stand for: after both weeks and the month of July.
AS_OF = datetime(2014, 8, 4, tzinfo=UTC)
CANDLES = dg.AssetKey("candles")


@dataclass
class Warehouse:
    url: str
    instance: dg.DagsterInstance
    good: Path
    bad: Path

    def materialize(self, csv_dir: Path, start: date, end: date, **kwargs: object) -> None:
        defs = definitions_for(self.url, csv_dir)
        outcomes = runs.materialize(defs, self.instance, start, end, as_of=AS_OF, **kwargs)
        assert all(o.success for o in outcomes), [o.error for o in outcomes]

    def periods(self) -> pd.DataFrame:
        frame = table(self.url, "period_candles")
        frame["period_start"] = pd.to_datetime(frame["period_start"])
        return frame.set_index(["interval", "period_start"])


def spoil(bars: pd.DataFrame) -> None:
    """A hand-made variant: the 2014-07-09 bar has its high below its low."""
    bad = bars["date"] == BAD_DAY
    bars.loc[bad, "high"] = bars.loc[bad, "low"] - 1


@pytest.fixture(scope="module")
def warehouse(
    pg_server: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    with postgres_instance(pg_server) as instance:
        url = create_database(pg_server, "warehouse")
        watch(url, ["IBM"], FIRST_DAY, removed_on=LAST_DAY + timedelta(days=1))
        root = tmp_path_factory.mktemp("periods")
        store = Warehouse(
            url,
            instance,
            good=copy_daily(root / "good", "IBM"),
            bad=copy_daily(root / "bad", "IBM", spoil),
        )
        store.materialize(store.bad, FIRST_DAY, LAST_DAY)
        yield store


def sample_bars(start: str, end: str) -> pd.DataFrame:
    bars = pd.read_csv(SAMPLE_DATA_DIR / "lean-daily" / "IBM.csv", dtype={"date": str})
    return bars[(bars["date"] >= start) & (bars["date"] <= end)]


def test_a_week_with_a_holiday_is_built_from_its_four_sessions(warehouse: Warehouse) -> None:
    week = warehouse.periods().loc[("1w", HOLIDAY_WEEK)]
    bars = sample_bars("2014-06-30", "2014-07-06")
    assert len(bars) == week["sessions"] == 4
    assert week["status"] == "complete"
    assert week["period_end"] == date(2014, 7, 6)
    assert week["open"] == bars["open"].iloc[0]
    assert week["close"] == bars["close"].iloc[-1]
    assert week["high"] == bars["high"].max()
    assert week["low"] == bars["low"].min()
    assert week["volume"] == bars["volume"].sum()
    assert week["ts"] == pd.Timestamp("2014-06-30 13:30", tz="UTC")


def test_a_week_with_a_blocked_day_has_no_candle_and_says_why(warehouse: Warehouse) -> None:
    week = warehouse.periods().loc[("1w", BLOCKED_WEEK)]
    assert week["status"] == "incomplete"
    assert week["reason"] == f"{BAD_DAY} blocked"
    assert week[["open", "high", "low", "close", "volume"]].isna().all()
    month = warehouse.periods().loc[("1M", pd.Timestamp("2014-07-01"))]
    assert month["status"] == "incomplete"
    assert (
        month["reason"] == f"{BAD_DAY} blocked; 14 days not materialised (2014-07-14 .. 2014-07-31)"
    )
    shown = partition_metadata(warehouse.instance, CANDLES, BAD_DAY)
    assert f"IBM 1w 2014-07-07: {BAD_DAY} blocked" in shown["periods_without_candle"].value
    assert shown["run_period_candles"].value == 1


def test_repairing_the_blocked_day_builds_its_week_from_the_stored_days(
    warehouse: Warehouse,
) -> None:
    warehouse.materialize(warehouse.good, date(2014, 7, 9), date(2014, 7, 9), refetch=True)
    week = warehouse.periods().loc[("1w", BLOCKED_WEEK)]
    bars = sample_bars("2014-07-07", "2014-07-13")
    assert week["status"] == "complete" and pd.isna(week["reason"])
    assert week["sessions"] == len(bars) == 5
    assert (week["open"], week["close"]) == (bars["open"].iloc[0], bars["close"].iloc[-1])
    assert (week["high"], week["low"]) == (bars["high"].max(), bars["low"].min())
    assert week["volume"] == bars["volume"].sum()
    untouched = warehouse.periods().loc[("1w", HOLIDAY_WEEK)]
    assert untouched["status"] == "complete", "a run judges only the periods of its days"


def test_refetching_complete_days_rebuilds_the_same_period_candles(warehouse: Warehouse) -> None:
    before = warehouse.periods().drop(columns=["built_at", "run_id"])
    warehouse.materialize(warehouse.good, FIRST_DAY, LAST_DAY, refetch=True)
    after = warehouse.periods().drop(columns=["built_at", "run_id"])
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    assert after.loc[("1w", HOLIDAY_WEEK), "sessions"] == 4


def test_materialising_stored_days_again_judges_their_periods(warehouse: Warehouse) -> None:
    """What an upgraded warehouse does to fill the new table: no provider call, every period."""
    before = warehouse.periods().drop(columns=["built_at", "run_id"])
    with psycopg.connect(warehouse.url) as conn:
        conn.execute(sql.SQL("DELETE FROM {}").format(qualified(period_candles)))
    warehouse.materialize(warehouse.good, FIRST_DAY, LAST_DAY)
    after = warehouse.periods().drop(columns=["built_at", "run_id"])
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    raw = partition_metadata(warehouse.instance, dg.AssetKey("raw_quotes"), "2014-07-07")
    assert raw["run_provider_requests"].value == 0
