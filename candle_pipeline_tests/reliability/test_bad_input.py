"""A bad file in a run: its ticker fails alone, recorded `failed` with one clear message naming
the file and the problem, and nothing of it is stored; the run's other tickers are stored and the
day's coverage check names the failed ticker-day."""

import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.domain.ticker_days import COMPLETE, FAILED
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline_tests.conftest import definitions_for, table, watch
from candle_pipeline_tests.quality.records import latest_evaluations

GOOD = "ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,1,1,1,5\n"
DAY = date(2013, 10, 7)
MINUTE_DIR = SAMPLE_DATA_DIR / "lean-minute"

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ts,open,high,low,close\n2013-10-07T13:30:00Z,1,1,1,1\n", "missing column(s) volume"),
        ("ts,open,high,low,close,volume\n2013-10-07T13:30:00Z,1,1,one,1,5\n", "column low holds"),
        (GOOD + "2013-10-07T13:29:00Z,1,1,1,1,5\n", "rows are not in time order"),
        (GOOD + GOOD.split("\n", 1)[1], "rows share a timestamp"),
        ("", "not a readable CSV file"),
    ],
)
def test_a_bad_csv_fails_its_ticker_alone(
    warehouse_url: str, instance: dg.DagsterInstance, tmp_path: Path, text: str, problem: str
) -> None:
    csv_dir = tmp_path / "csv"
    shutil.copytree(MINUTE_DIR / "SPY", csv_dir / "lean-minute" / "SPY")
    broken = csv_dir / "lean-minute" / "IBM" / f"{DAY.isoformat()}.csv"
    broken.parent.mkdir(parents=True)
    broken.write_text(text)
    watch(warehouse_url, ["SPY", "IBM"], DAY)
    defs = definitions_for(warehouse_url, csv_dir)

    outcomes = runs.materialize(defs, instance, DAY, DAY)

    assert [o.success for o in outcomes] == [True], [o.error for o in outcomes]
    states = table(warehouse_url, "ticker_days").set_index("ticker")
    assert states.loc["SPY", "status"] == COMPLETE
    assert states.loc["IBM", "status"] == FAILED
    error = states.loc["IBM", "last_error"]
    assert str(broken) in error and problem in error, error
    assert "\n" not in error.strip() and "Traceback" not in error, "one clear line"
    spy_rows = len(pd.read_csv(MINUTE_DIR / "SPY" / f"{DAY.isoformat()}.csv"))
    for name in ("raw_quotes", "validated_quotes"):
        stored = table(warehouse_url, name)
        assert set(stored["ticker"]) == {"SPY"}, f"{name}: nothing of IBM"
        assert len(stored) == spy_rows, f"{name}: all of SPY"
    assert set(table(warehouse_url, "candles")["ticker"]) == {"SPY"}
    coverage = latest_evaluations(instance, "coverage", dg.AssetKey("raw_quotes"))[DAY.isoformat()]
    assert not coverage.passed
    assert coverage.metadata["offending_ticker_days"].value == "IBM (failed)"
