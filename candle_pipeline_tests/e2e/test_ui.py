"""The Dagster UI for real: a backfill launched through the webserver's GraphQL API (as the UI
launches it) runs on the daemon and fills the warehouse; then a browser shows the result."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date

import pytest
import sqlalchemy as sa

from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.e2e.conftest import REPOSITORY, Deployment, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.xdist_group("dagster-ui")]

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


def test_doctor_sees_a_healthy_deployment(deployment: Deployment) -> None:
    result = deployment.cli("doctor", "--expect-daemon")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problem found" in result.stdout
    assert "daemons sent a recent heartbeat" in result.stdout
