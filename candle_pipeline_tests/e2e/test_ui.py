"""The Dagster UI for real: a backfill launched through the webserver's GraphQL API (as the UI
launches it) runs on the daemon and fills the warehouse; then a browser shows the result."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.e2e.conftest import REPOSITORY, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TICKERS = ("SPY", "IBM")
FIRST_DAY, LAST_DAY = "2013-10-04", "2013-10-08"
SESSIONS = (date(2013, 10, 4), date(2013, 10, 7), date(2013, 10, 8))
CANDLES_PER_FULL_DAY = 78 + 26 + 13 + 7 + 1
BACKFILL_TIMEOUT_SECONDS = 300
PER_TICKER_ASSETS = ("raw_quotes", "validated_quotes", "candles")

ADD_PARTITION = """
mutation Add($repositorySelector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(
    repositorySelector: $repositorySelector, partitionsDefName: $name, partitionKey: $key
  ) { __typename ... on PythonError { message } ... on UnauthorizedError { message } }
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

DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def per_ticker_partition_counts() -> set[str]:
    """How the graph labels the per-ticker assets' partitions (days x the two tickers); both
    values around a midnight that may pass while the page loads."""
    from candle_pipeline.partitions import trading_date_partitions  # noqa: PLC0415

    counts = set()
    for moment in (datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5)):
        with dg.partition_loading_context(effective_dt=moment):
            days = trading_date_partitions.get_num_partitions()
        counts.add(f"{days * len(TICKERS):,} partitions")
    return counts


def asset_partitions(asset: str, start: str, end: str) -> dict:
    return {"assetKey": {"path": [asset]}, "partitions": {"ranges": [{"start": start, "end": end}]}}


@pytest.fixture(scope="module")
def backfill(deployment: Deployment) -> Mapping[str, object]:
    """Register the tickers and backfill every asset over a few sample days, as the UI does."""
    for ticker in TICKERS:
        added = deployment.graphql(
            ADD_PARTITION,
            {"repositorySelector": REPOSITORY, "name": "tickers", "key": ticker},
        )["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
    params = {
        "partitionsByAssets": [
            asset_partitions("market_timings", FIRST_DAY, LAST_DAY),
            *(
                asset_partitions(asset, f"{FIRST_DAY}|{TICKERS[0]}", f"{LAST_DAY}|{TICKERS[-1]}")
                for asset in PER_TICKER_ASSETS
            ),
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
    runs = backfill["runs"]
    assert runs, "the backfill launched no run"
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


def test_doctor_sees_a_healthy_deployment(
    deployment: Deployment, backfill: Mapping[str, object]
) -> None:
    result = deployment.cli("doctor", "--expect-daemon")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problem found" in result.stdout
    assert "daemons sent a recent heartbeat" in result.stdout


SCREENSHOTS_ENV = "CANDLE_UI_SCREENSHOTS"
UI_TIMEOUT_MS = 60_000
CHECKS_QUERY = """
query Checks($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } }
  }
}
"""


def screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """Into tmp_path, and into $CANDLE_UI_SCREENSHOTS when set (docs/ for the README)."""
    folders = [
        tmp_path,
        *([Path(os.environ[SCREENSHOTS_ENV])] if SCREENSHOTS_ENV in os.environ else []),
    ]
    for folder in folders:
        page.screenshot(path=str(folder / f"{name}.png"))


def open_partition(page: Page, deployment: Deployment, asset: str, day: str, ticker: str) -> None:
    """The asset's Partitions tab, narrowed to the sample days, one partition clicked."""
    page.goto(f"{deployment.url}/assets/{asset}?view=partitions")
    page.get_by_text("Partitions Selected").wait_for(timeout=UI_TIMEOUT_MS)
    date_range = page.locator("input[placeholder^='ex:']")
    date_range.fill(f"[{FIRST_DAY}...{LAST_DAY}]")
    date_range.press("Enter")
    page.get_by_text("10 Partitions Selected").wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_text(day, exact=True).first.click()
    page.get_by_text(ticker, exact=True).first.click()
    page.get_by_text(f"{day}|{ticker}", exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)


def metadata_value(page: Page, label: str) -> str:
    """The value next to `label` in the selected partition's metadata table."""
    row = page.locator("tr", has=page.get_by_text(label, exact=True)).last
    return row.locator("td").nth(1).inner_text().strip()


def test_browser_shows_the_graph_partitions_and_checks(
    deployment: Deployment,
    backfill: Mapping[str, object],
    browser_page: Page,
    tmp_path: Path,
) -> None:
    page = browser_page
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}

    # The graph: every asset of the group, each with its latest event.
    page.goto(f"{deployment.url}/locations/candle_pipeline/asset-groups/market_data")
    for asset in ("market_timings", *PER_TICKER_ASSETS):
        expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Latest event")).to_have_count(4)
    # The count grows by one day at midnight: what the definitions hold now, not a literal.
    shown = page.get_by_text(re.compile(r"^[\d,]+ partitions$")).first.inner_text()
    assert shown in per_ticker_partition_counts(), shown
    screenshot(page, "ui-graph", tmp_path)

    # candles: the sample days are all materialised, none failed or missing.
    open_partition(page, deployment, "candles", "2013-10-07", "SPY")
    for status in ("Materialized (10)", "Failed (0)", "Missing (0)"):
        expect(page.get_by_text(status)).to_be_visible()
    for ticker in TICKERS:
        expect(page.get_by_text(ticker, exact=True).first).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True).last).to_be_visible()
    assert metadata_value(page, "rows") == str(CANDLES_PER_FULL_DAY)
    screenshot(page, "ui-candles", tmp_path)

    # validated_quotes: a partition shows its quality score and its components.
    open_partition(page, deployment, "validated_quotes", "2013-10-07", "SPY")
    assert metadata_value(page, "status") == "scored"
    for label in ("quality_score", "completeness", "validity", "consistency"):
        assert float(metadata_value(page, label)) == 1.0, label
    assert metadata_value(page, "expected_bars") == "390"
    screenshot(page, "ui-quality", tmp_path)

    # A Saturday of raw_quotes: materialised empty, and the page says why.
    open_partition(page, deployment, "raw_quotes", "2013-10-05", "IBM")
    assert metadata_value(page, "rows") == "0"
    assert metadata_value(page, "status") == "skipped"
    assert metadata_value(page, "reason") == "market closed: XNYS has no session on 2013-10-05"

    # Checks, where the assets declare any: each one is listed on the Checks tab.
    for asset in ("market_timings", *PER_TICKER_ASSETS):
        node = deployment.graphql(CHECKS_QUERY, {"path": [asset]})["assetNodeOrError"]
        checks = [check["name"] for check in node["assetChecksOrError"].get("checks", [])]
        if checks:
            page.goto(f"{deployment.url}/assets/{asset}?view=checks")
            for name in checks:
                expect(page.get_by_text(name, exact=True).first).to_be_visible(
                    timeout=UI_TIMEOUT_MS
                )
