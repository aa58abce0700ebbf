"""Bad files in a run: one clear message naming the file and the problem, and nothing written."""

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from candle_pipeline import runs
from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import SAMPLE_DATA_DIR
from candle_pipeline_tests.conftest import definitions_for

GOOD = "ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,1,1,1,5\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ts,open,high,low,close\n2013-10-07T13:30:00Z,1,1,1,1\n", "missing column(s) volume"),
        ("ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,1,one,1,5\n", "column low holds"),
        (GOOD + "2013-10-07T13:29:00Z,1,1,1,1,5\n", "rows are not in time order"),
        (GOOD + GOOD.split("\n", 1)[1], "rows share a timestamp"),
    ],
)
def test_a_bad_csv_fails_the_run_and_writes_nothing(
    warehouse_url: str, instance: dg.DagsterInstance, tmp_path: Path, text: str, problem: str
) -> None:
    csv_dir = tmp_path / "csv"
    shutil.copytree(SAMPLE_DATA_DIR / "lean-minute" / "SPY", csv_dir / "lean-minute" / "SPY")
    broken = csv_dir / "lean-minute" / "IBM" / "2013-10-07.csv"
    broken.parent.mkdir(parents=True)
    broken.write_text(text)
    defs = definitions_for(warehouse_url, csv_dir)
    instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, ["SPY", "IBM"])
    day = date(2013, 10, 7)

    outcomes = runs.materialize(defs, instance, ["SPY", "IBM"], day, day)

    assert outcomes[0].success, "market_timings"
    failed = outcomes[-1]
    assert not failed.success
    assert str(broken) in failed.error
    assert problem in failed.error
    with engine_for(warehouse_url).connect() as conn:
        for table in ("raw_quotes", "validated_quotes", "candles"):
            count = conn.execute(sa.text(f"SELECT count(*) FROM market.{table}")).scalar_one()
            assert count == 0, f"{table}: SPY's good rows are not written either"
