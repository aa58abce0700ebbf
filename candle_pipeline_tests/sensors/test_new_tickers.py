"""new_tickers_sensor on a real warehouse and Dagster instance: what it requests, and what its
requests do when executed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE, FAILED
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for
from candle_pipeline.sensors.new_tickers import TICKERS_TAG, new_tickers_sensor
from candle_pipeline.settings import SP500_CONSTITUENTS
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import definitions_for, table, today_is, watch
from candle_pipeline_tests.quality.records import latest_evaluations, partition_metadata
from candle_pipeline_tests.run_requests import keys, plan, provider_requests

pytestmark = pytest.mark.integration

# The sensor runs on Saturday 2013-10-12: a history from Friday 2013-10-04 is 8 days, to Friday
# 2013-10-11 (today's session belongs to the after-close schedule).
TODAY = date(2013, 10, 12)
WEEK_START = date(2013, 10, 4)
RAW = dg.AssetKey("raw_quotes")


def resource_for(url: str) -> WarehouseResource:
    return WarehouseResource(database_url=url, default_exchange="XNYS")


def tick(
    instance: dg.DagsterInstance, url: str, cursor: str | None, today: date = TODAY
) -> dg.SensorResult:
    """One evaluation of the sensor on `today`."""
    with (
        today_is(today),
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"warehouse": resource_for(url)}
        ) as context,
    ):
        return new_tickers_sensor(context)


def skip_message(result: dg.SensorResult) -> str | None:
    return result.skip_reason.skip_message if result.skip_reason else None


def test_a_new_ticker_is_requested_over_its_history_once(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(5)
    watch(warehouse_url, ["IBM"], WEEK_START)

    first = tick(instance, warehouse_url, None)
    assert plan(first) == [
        ("2013-10-04", "2013-10-08", ["IBM"]),
        ("2013-10-09", "2013-10-11", ["IBM"]),
    ], "its history up to yesterday, in runs of at most 5 days"
    for request in first.run_requests:
        assert request.run_config["ops"]["market_data"]["config"]["refetch"] is False
        assert request.tags[TICKERS_TAG] == "IBM"
    assert new_tickers_sensor.job_name == "market_data_job"

    second = tick(instance, warehouse_url, first.cursor)
    assert second.run_requests == []
    assert skip_message(second) == "no new tickers on the watch list"
    # A lost cursor asks again, with the same run keys: Dagster launches nothing twice.
    assert keys(tick(instance, warehouse_url, None)) == keys(first)


def test_day_ranges_follow_days_per_run_and_tickers_sharing_a_window_share_runs(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(3)
    watch(warehouse_url, ["SPY", "AIG"], WEEK_START)
    watch(warehouse_url, ["BAC"], date(2013, 10, 10))
    watch(warehouse_url, ["GOOG"], TODAY)
    result = tick(instance, warehouse_url, None)
    assert plan(result) == [
        ("2013-10-04", "2013-10-06", ["AIG", "SPY"]),
        ("2013-10-07", "2013-10-09", ["AIG", "SPY"]),
        ("2013-10-10", "2013-10-11", ["AIG", "SPY"]),
        ("2013-10-10", "2013-10-11", ["BAC"]),
    ], "GOOG's history starts today: nothing to fetch before the session closes"
    assert len(set(keys(result))) == 4
    assert result.run_requests[0].tags[TICKERS_TAG] == "AIG,SPY"
    assert tick(instance, warehouse_url, result.cursor).run_requests == [], "GOOG included"


def test_a_history_starting_before_the_partitions_starts_with_them(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(366)
    watch(warehouse_url, ["IBM"], date(1999, 12, 20))
    result = tick(instance, warehouse_url, None, today=date(2000, 1, 5))
    assert plan(result) == [("2000-01-01", "2000-01-04", ["IBM"])]


def test_inactive_removed_and_re_added_tickers(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(366)
    watch(warehouse_url, ["AIG"], WEEK_START, removed_on=date(2013, 10, 9))
    nothing = tick(instance, warehouse_url, None)
    assert nothing.run_requests == [], "a ticker kept for its past days only is not new"

    watch(warehouse_url, ["SPY"], WEEK_START)
    first = tick(instance, warehouse_url, None)
    assert plan(first) == [("2013-10-04", "2013-10-11", ["SPY"])]
    with engine_for(warehouse_url).begin() as connection:
        assert watchlist.deactivate(connection, ["SPY"], date(2013, 10, 9)) == ["SPY"]
    removed = tick(instance, warehouse_url, first.cursor)
    assert removed.run_requests == []

    watch(warehouse_url, ["SPY"], date(2013, 10, 7))
    again = tick(instance, warehouse_url, removed.cursor)
    assert plan(again) == [("2013-10-04", "2013-10-11", ["SPY"])], "its earlier start is kept"
    assert set(keys(again)).isdisjoint(keys(first)), "a new run key, or Dagster would skip it"
    assert tick(instance, warehouse_url, again.cursor).run_requests == []


def test_a_ticker_the_provider_places_elsewhere_is_moved_and_requested_again(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(366)
    watch(warehouse_url, ["NVDA"], WEEK_START)
    watch(warehouse_url, ["IBM"], WEEK_START, exchange="XNYS")
    first = tick(instance, warehouse_url, None)
    assert plan(first) == [("2013-10-04", "2013-10-11", ["IBM", "NVDA"])]
    resource = resource_for(warehouse_url)
    resource.record_provider_exchanges({"NVDA": "NMS", "IBM": "NMS"})

    moved = tick(instance, warehouse_url, first.cursor)
    assert plan(moved) == [("2013-10-04", "2013-10-11", ["NVDA"])]
    assert set(keys(moved)).isdisjoint(keys(first)), "a new run key, or Dagster would skip it"
    assert resource.exchanges().mic_for("NVDA") == "XNAS"
    assert resource.exchanges().mic_for("IBM") == "XNYS", "an exchange given on adding stays"
    assert resource.exchanges_in_use() == ["XNAS", "XNYS"]
    assert tick(instance, warehouse_url, moved.cursor).run_requests == []


def test_the_sp500_in_one_tick(
    instance: dg.DagsterInstance, warehouse_url: str, days_per_run: Callable[[int], None]
) -> None:
    days_per_run(366)
    entries = watchlist.read_sp500(str(SP500_CONSTITUENTS))
    watch(warehouse_url, [entry.ticker for entry in entries], date(2013, 1, 2))
    [request] = tick(instance, warehouse_url, None).run_requests
    tickers = request.run_config["ops"]["market_data"]["config"]["tickers"]
    assert len(tickers) == len(entries) == 503
    assert "BRK-B" in tickers
    assert (request.tags[runs.RANGE_START_TAG], request.tags[runs.RANGE_END_TAG]) == (
        "2013-01-02",
        "2013-10-11",
    )
    tag = request.tags[TICKERS_TAG]
    assert len(tag) == 255 and tag.startswith("A,AAPL,ABBV,") and tag.endswith("...")


def test_the_requested_runs_fetch_the_new_ticker_and_leave_the_others_untouched(
    instance: dg.DagsterInstance,
    warehouse_url: str,
    tmp_path: Path,
    days_per_run: Callable[[int], None],
) -> None:
    """SPY's history is stored when IBM is added: complete, but for the days of a broken file,
    which failed (a run of every ticker would ask again for them). SPY's files are then
    removed: any provider call for SPY would change its ticker-days (no_data)."""
    days_per_run(5)
    csv_dir = tmp_path / "csv"
    for ticker in ("SPY", "IBM"):
        shutil.copytree(SAMPLE_DATA_DIR / "lean-minute" / ticker, csv_dir / "lean-minute" / ticker)
    (csv_dir / "lean-minute" / "SPY" / "2013-10-09.csv").write_text("not a csv of bars\n")
    defs = definitions_for(warehouse_url, csv_dir)
    job = defs.resolve_job_def("market_data_job")

    def execute(result: dg.SensorResult) -> list[str]:
        run_ids = []
        for request in result.run_requests:
            outcome = job.execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags
            )
            assert outcome.success
            run_ids.append(outcome.run_id)
        return run_ids

    watch(warehouse_url, ["SPY"], WEEK_START)
    spy = tick(instance, warehouse_url, None)
    execute(spy)
    names = [*runs.MARKET_DATA_ASSETS, "ticker_days", "quality_reports", "corporate_actions"]
    before = {name: table(warehouse_url, name) for name in names}
    spy_states = before["ticker_days"].set_index("trade_date")["status"]
    # The broken file fails SPY's fetch of its run: Wednesday to Friday.
    assert spy_states[spy_states == FAILED].index.tolist() == [
        date(2013, 10, 9),
        date(2013, 10, 10),
        date(2013, 10, 11),
    ]
    assert spy_states.value_counts().to_dict() == {COMPLETE: 3, CLOSED: 2, FAILED: 3}
    shutil.rmtree(csv_dir / "lean-minute" / "SPY")

    watch(warehouse_url, ["IBM"], WEEK_START)
    ibm = tick(instance, warehouse_url, spy.cursor)
    assert plan(ibm) == [
        ("2013-10-04", "2013-10-08", ["IBM"]),
        ("2013-10-09", "2013-10-11", ["IBM"]),
    ]
    run_ids = execute(ibm)

    for name, old in before.items():
        after = table(warehouse_url, name)
        pd.testing.assert_frame_equal(
            after[after["ticker"] != "IBM"].reset_index(drop=True), old, obj=name
        )
    states = table(warehouse_url, "ticker_days")
    ibm_states = states[states["ticker"] == "IBM"]
    assert sorted(ibm_states["status"].value_counts().items()) == [(CLOSED, 2), (COMPLETE, 6)]
    # One file per IBM session: 3 of them (Fri, Mon, Tue) in the first run, 3 in the second.
    assert [provider_requests(instance, run_id) for run_id in run_ids] == [3, 3]
    # The days' checks and metadata, evaluated again by IBM's runs, still see SPY's failure.
    wednesday = latest_evaluations(instance, "coverage", RAW)["2013-10-09"]
    assert not wednesday.passed
    assert wednesday.metadata["offending_ticker_days"].value == "SPY (failed)"
    metadata = partition_metadata(instance, RAW, "2013-10-09")
    assert (metadata["tickers_expected"].value, metadata["tickers_failed"].value) == (2, 1)
    assert tick(instance, warehouse_url, ibm.cursor).run_requests == []
