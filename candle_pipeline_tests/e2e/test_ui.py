"""The Dagster UI for real: tickers watched through the deployment's command line, a backfill of
day partitions launched through the webserver's GraphQL API (as the UI launches it) runs on the
daemon and fills the warehouse; a browser shows the result; then a ticker added with the daemon
running gets its history from new_tickers_sensor, and only it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from playwright.sync_api import Page, expect

from candle_pipeline.partitions import day_partitions
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import get_settings
from candle_pipeline_tests.conftest import table
from candle_pipeline_tests.e2e.conftest import REPOSITORY, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TICKERS = ("AIG", "SPY")
FIRST_DAY, LAST_DAY = "2013-10-04", "2013-10-08"
SESSIONS = (date(2013, 10, 4), date(2013, 10, 7), date(2013, 10, 8))
CANDLES_PER_FULL_DAY = 78 + 26 + 13 + 7 + 2 + 1
ASSETS = ("market_timings", "raw_quotes", "validated_quotes", "candles")
BACKFILL_TIMEOUT_SECONDS = 300
# IBM's history since 2013 is one run of its ~4,800 days; its rows commit before the day checks.
NEW_TICKER_TIMEOUT_SECONDS = 420
NEW_TICKERS_SENSOR = {**REPOSITORY, "sensorName": "new_tickers_sensor"}

SENSOR_STATE = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename ... on Sensor { sensorState { id status } }
  }
}
"""

STOP_SENSOR = """
mutation Stop($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename ... on Sensor { sensorState { status } } ... on PythonError { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions runs(limit: 20) { runId status } }
    ... on PythonError { message }
  }
}
"""

RUNS_TAGGED = """
query Runs($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId runConfigYaml tags { key value } } }
  }
}
"""

CHECK_PARTITIONS = """
query CheckPartitions($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      assetChecksOrError {
        ... on AssetChecks {
          checks {
            name
            partitionStatuses {
              __typename
              ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
            }
          }
        }
      }
    }
  }
}
"""

DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def sensor_state(deployment: Deployment) -> Mapping[str, str]:
    found = deployment.graphql(SENSOR_STATE, {"selector": NEW_TICKERS_SENSOR})["sensorOrError"]
    assert found["__typename"] == "Sensor", found
    return found["sensorState"]


def day_partition_counts() -> set[str]:
    """How the graph labels the day partitions: what the definitions hold now, and five minutes
    on (a midnight may pass while the page loads); never a literal that grows every day."""
    counts = set()
    for moment in (datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5)):
        with dg.partition_loading_context(effective_dt=moment):
            counts.add(f"{day_partitions(get_settings()).get_num_partitions():,} partitions")
    return counts


@pytest.fixture(scope="module")
def backfill(deployment: Deployment) -> Mapping[str, object]:
    """Watch the tickers from the first day through the command line and backfill every asset
    over the sample days, as the UI does. new_tickers_sensor is switched off first, as a user
    does in the UI before watching tickers whose days they backfill by hand: else it would
    also fetch their history up to yesterday."""
    stopped = deployment.graphql(STOP_SENSOR, {"id": sensor_state(deployment)["id"]})["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED", stopped
    added = deployment.cli("tickers", "add", *TICKERS, "--history-start", FIRST_DAY)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "watching 2 ticker(s)" in added.stdout
    params = {
        "partitionsByAssets": [
            {
                "assetKey": {"path": [asset]},
                "partitions": {"ranges": [{"start": FIRST_DAY, "end": LAST_DAY}]},
            }
            for asset in ASSETS
        ],
        "title": "sample week",
    }
    launched = deployment.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished() -> Mapping[str, object] | None:
        state = deployment.graphql(BACKFILL_STATUS, {"id": backfill_id})
        state = state["partitionBackfillOrError"]
        assert state["__typename"] == "PartitionBackfill", state
        return state if state["status"] in DONE else None

    started = time.monotonic()
    state = wait_for("the backfill to finish", finished, deployment, BACKFILL_TIMEOUT_SECONDS)
    print(f"backfill finished in {time.monotonic() - started:.0f} s")
    return state


def test_backfill_through_graphql_fills_the_warehouse(
    deployment: Deployment, backfill: Mapping[str, object]
) -> None:
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, deployment.log_tail()
    assert backfill["numPartitions"] == 5
    runs = backfill["runs"]
    assert len(runs) == 1, "five days are one run"
    assert {run["status"] for run in runs} == {"SUCCESS"}
    with engine_for(deployment.warehouse_url).connect() as conn:
        timings = conn.execute(
            sa.text("SELECT session_date, is_open FROM market.market_timings ORDER BY 1")
        ).all()
        candles = dict(
            conn.execute(
                sa.text(
                    "SELECT ticker || ' ' || trade_date, count(*) FROM market.candles GROUP BY 1"
                )
            ).all()
        )
    assert [(day.isoformat(), is_open) for day, is_open in timings] == [
        ("2013-10-04", True),
        ("2013-10-05", False),
        ("2013-10-06", False),
        ("2013-10-07", True),
        ("2013-10-08", True),
    ]
    assert candles == {
        f"{ticker} {day.isoformat()}": CANDLES_PER_FULL_DAY
        for ticker in TICKERS
        for day in SESSIONS
    }
    states = table(deployment.warehouse_url, "ticker_days")
    assert sorted(states["status"].value_counts().items()) == [("closed", 4), ("complete", 6)]


def test_doctor_sees_a_healthy_deployment(
    deployment: Deployment, backfill: Mapping[str, object]
) -> None:
    result = deployment.cli("doctor", "--expect-daemon")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problem found" in result.stdout
    assert "daemons sent a recent heartbeat" in result.stdout


SCREENSHOTS_ENV = "CANDLE_UI_SCREENSHOTS"
UI_TIMEOUT_MS = 60_000


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """Into tmp_path, and into $CANDLE_UI_SCREENSHOTS when set (docs/ for the README)."""
    folders = [
        tmp_path,
        *([Path(os.environ[SCREENSHOTS_ENV])] if SCREENSHOTS_ENV in os.environ else []),
    ]
    for folder in folders:
        page.screenshot(path=str(folder / f"{name}.png"))


def open_partition(page: Page, deployment: Deployment, asset: str, day: str) -> None:
    """The asset's Partitions tab, narrowed to the sample days, one day clicked."""
    page.goto(f"{deployment.url}/assets/{asset}?view=partitions")
    page.get_by_text("Partitions Selected").wait_for(timeout=UI_TIMEOUT_MS)
    date_range = page.locator("input[placeholder^='ex:']")
    date_range.fill(f"[{FIRST_DAY}...{LAST_DAY}]")
    date_range.press("Enter")
    page.get_by_text("5 Partitions Selected").wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_text(day, exact=True).first.click()
    expect(page.get_by_text("No partition selected")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    page.locator("tr", has=page.get_by_text("tickers_expected", exact=True)).wait_for(
        timeout=UI_TIMEOUT_MS
    )


def metadata_value(page: Page, label: str) -> str:
    """The value next to `label` in the selected partition's metadata table."""
    row = page.locator("tr", has=page.get_by_text(label, exact=True)).last
    return row.locator("td").nth(1).inner_text().strip()


DAY = re.compile(r"\b\d{4}-\d\d-\d\d\b")


def check_history(page: Page, deployment: Deployment, asset: str, check: str) -> dict[str, str]:
    """A check's execution history as the UI lists it: {day partition: its row's text}."""
    page.goto(f"{deployment.url}/assets/{asset}?view=checks&checkDetail={check}")
    page.get_by_text("Execution history", exact=True).first.click()
    rows = page.locator("tr", has=page.get_by_text(DAY))
    rows.first.wait_for(timeout=UI_TIMEOUT_MS)
    texts = [" ".join(row.inner_text().split()) for row in rows.all()]
    return {DAY.findall(text)[0]: text for text in texts}


def test_browser_shows_the_graph_partitions_and_checks(
    deployment: Deployment,
    backfill: Mapping[str, object],
    browser_page: Page,
    tmp_path: Path,
) -> None:
    page = browser_page
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}

    # The graph: every asset of the group, each with its latest event and the day partitions.
    page.goto(f"{deployment.url}/locations/candle_pipeline/asset-groups/market_data")
    for asset in ASSETS:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Latest event")).to_have_count(len(ASSETS))
    labels = page.get_by_text(re.compile(r"^[\d,]+ partitions$"))
    expect(labels).to_have_count(len(ASSETS))
    shown = {label.inner_text() for label in labels.all()}
    assert len(shown) == 1 and shown <= day_partition_counts(), shown
    screenshot(page, "ui-graph", tmp_path)

    # candles: the sample days are all materialised; a day says what it holds.
    open_partition(page, deployment, "candles", "2013-10-07")
    for status in ("Materialized (5)", "Failed (0)", "Missing (0)"):
        expect(page.get_by_text(status)).to_be_visible()
    assert metadata_value(page, "tickers_expected") == "2"
    assert metadata_value(page, "tickers_complete") == "2"
    for status in ("blocked", "no_data", "failed", "retry_later", "closed"):
        assert metadata_value(page, f"tickers_{status}") == "0", status
    assert 0.99 <= float(metadata_value(page, "quality_score_min")) <= 1
    assert float(metadata_value(page, "quality_score_mean")) >= 0.99
    assert metadata_value(page, "rows_written") == str(2 * CANDLES_PER_FULL_DAY)
    screenshot(page, "ui-candles", tmp_path)

    # A Saturday: both tickers closed, nothing written, no score.
    open_partition(page, deployment, "candles", "2013-10-05")
    assert metadata_value(page, "tickers_closed") == "2"
    assert metadata_value(page, "tickers_complete") == "0"
    assert metadata_value(page, "rows_written") == "0"
    expect(page.get_by_text("quality_score_min", exact=True)).to_have_count(0)

    # The checks of validated_quotes; quality_score and raw_quotes' coverage once per day.
    page.goto(f"{deployment.url}/assets/validated_quotes?view=checks")
    for check in ("quality_score", "spikes", "gaps", "stale_runs"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    sample_days = [f"2013-10-0{day}" for day in range(4, 9)]
    scores = check_history(page, deployment, "validated_quotes", "quality_score")
    assert sorted(scores) == sample_days, scores
    assert all(row.startswith("Passed") for row in scores.values()), scores
    assert "all 2 scored ticker-day(s) at or above 0.8" in scores["2013-10-07"]
    assert "all 0 scored ticker-day(s)" in scores["2013-10-06"], "a Sunday has no score"
    coverage = check_history(page, deployment, "raw_quotes", "coverage")
    assert sorted(coverage) == sample_days, coverage
    assert all(row.startswith("Passed") for row in coverage.values()), coverage
    assert "all 2 open ticker-day(s) have data" in coverage["2013-10-08"]
    assert "all 0 open ticker-day(s) have data" in coverage["2013-10-05"]


def check_partition_ranges(deployment: Deployment, asset: str, check: str) -> list[tuple]:
    """The day check's partition statuses as the check's Partitions tab shows them:
    (first day, last day, status) per run of days with one status."""
    node = deployment.graphql(CHECK_PARTITIONS, {"assetKey": {"path": [asset]}})
    checks = node["assetNodeOrError"]["assetChecksOrError"]["checks"]
    [statuses] = [found["partitionStatuses"] for found in checks if found["name"] == check]
    assert statuses["__typename"] == "AssetCheckTimePartitionStatuses", statuses
    return [(found["startKey"], found["endKey"], found["status"]) for found in statuses["ranges"]]


def test_the_day_checks_of_the_days_materialised_are_current(
    deployment: Deployment, backfill: Mapping[str, object]
) -> None:
    """Each day's evaluation names the materialisation it checked, so the check's Partitions tab
    counts the sample days as passed, not as missing."""
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}
    for asset, check in (("validated_quotes", "quality_score"), ("raw_quotes", "coverage")):
        ranges = check_partition_ranges(deployment, asset, check)
        assert ranges == [(FIRST_DAY, LAST_DAY, "SUCCEEDED")], (check, ranges)


def test_a_ticker_added_with_the_daemon_running_gets_its_history_and_only_it(
    deployment: Deployment, backfill: Mapping[str, object]
) -> None:
    """The watched tickers are removed (their days and rows stay) and the sensor switched on
    again; `tickers add IBM --history-start 2013-10-07` alone then fills IBM's days."""
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}
    market_data = ("raw_quotes", "validated_quotes", "candles", "ticker_days")
    before = {name: table(deployment.warehouse_url, name) for name in market_data}
    removed = deployment.cli("tickers", "remove", *TICKERS)
    assert removed.returncode == 0, removed.stderr
    assert re.match(r"removed 2 ticker\(s\) from \d{4}-\d\d-\d\d on: ", removed.stdout)
    started = deployment.graphql(START_SENSOR, {"selector": NEW_TICKERS_SENSOR})["startSensor"]
    assert started["sensorState"]["status"] == "RUNNING", started

    added = deployment.cli("tickers", "add", "IBM", "--history-start", "2013-10-07")
    assert added.returncode == 0, added.stdout + added.stderr
    watched = ("'2013-10-07'", "'2013-10-08'")

    def ibm_complete() -> bool:
        with engine_for(deployment.warehouse_url).connect() as conn:
            statuses = conn.execute(
                sa.text(
                    "SELECT status FROM market.ticker_days WHERE ticker = 'IBM' "
                    f"AND trade_date IN ({', '.join(watched)})"
                )
            ).scalars()
            return sorted(statuses) == ["complete", "complete"]

    waited = time.monotonic()
    wait_for("IBM's ticker-days", ibm_complete, deployment, NEW_TICKER_TIMEOUT_SECONDS)
    print(f"IBM's history stored {time.monotonic() - waited:.0f} s after `tickers add`")

    for name, old in before.items():
        after = table(deployment.warehouse_url, name)
        pd.testing.assert_frame_equal(
            after[after["ticker"] != "IBM"].reset_index(drop=True), old, obj=name
        )
    candles = table(deployment.warehouse_url, "candles")
    ibm = candles[candles["ticker"] == "IBM"].groupby("trade_date").size()
    assert ibm[date(2013, 10, 7)] == ibm[date(2013, 10, 8)] == CANDLES_PER_FULL_DAY
    assert ibm.index.min() == date(2013, 10, 7), "nothing before its history start"

    tagged = {"tags": [{"key": "candle/tickers", "value": "IBM"}]}
    runs = deployment.graphql(RUNS_TAGGED, {"filter": tagged})["runsOrError"]["results"]
    assert len(runs) == 1, "the whole history in one run (one run holds up to 36,600 days)"
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert tags["dagster/asset_partition_range_start"] == "2013-10-07"
    config = yaml.safe_load(runs[0]["runConfigYaml"])["ops"]["market_data"]["config"]
    assert config == {"tickers": ["IBM"], "refetch": False}
