"""`candle-pipeline materialize` while a Dagster daemon works the run queue: its runs are queued
through the webserver like any other, launched by the daemon, waited for, and reported as the
in-process runs are; a webserver that does not answer is one line and exit status 1."""

from __future__ import annotations

import re
import subprocess
from datetime import date

import pytest

from candle_pipeline_tests.conftest import table, watch
from candle_pipeline_tests.e2e.conftest import BIN, Deployment, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TICKERS = ("AIG", "SPY")
FIRST_DAY, LAST_DAY = date(2013, 10, 4), date(2013, 10, 8)
SESSIONS = (date(2013, 10, 4), date(2013, 10, 7), date(2013, 10, 8))
# Watched until the day after the sample: no longer active, so new_tickers_sensor leaves them.
REMOVED_ON = date(2013, 10, 9)
UI_URL = "CANDLE_DAGSTER_UI_URL"
COMMAND_TIMEOUT_SECONDS = 300
QUEUED_LINE = "a Dagster daemon works the run queue: runs queued through"
RUN_LINE = re.compile(
    r"^run (?P<id>[0-9a-f]{8}) ok: market_timings, raw_quotes, validated_quotes, candles "
    rf"\[{FIRST_DAY} \.\. {LAST_DAY}\]$",
    re.MULTILINE,
)

MARKET_DATA_RUNS = """
{ runsOrError(filter: {pipelineName: "market_data_job"}) {
    ... on Runs { results { runId status tags { key value } } }
} }
"""

RUN_EVENTS = """
query Events($runId: ID!) {
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename } } }
}
"""


def materialize(deployment: Deployment, ui_url: str, *more: str) -> tuple[int, str, str]:
    """The deployment's command line, told where its webserver answers."""
    days = ["--start", FIRST_DAY.isoformat(), "--end", LAST_DAY.isoformat()]
    result = subprocess.run(
        [str(BIN / "candle-pipeline"), "materialize", *days, *more],
        env={**deployment.env, UI_URL: ui_url},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def watched(deployment: Deployment) -> Deployment:
    """The deployment with the sample tickers watched on the sample days."""
    watch(deployment.warehouse_url, TICKERS, FIRST_DAY, removed_on=REMOVED_ON)
    return deployment


def test_materialize_queues_its_run_and_reports_it(watched: Deployment) -> None:
    deployment = watched
    code, out, err = materialize(deployment, deployment.url)

    assert code == 0, out + err + deployment.log_tail()
    assert f"{QUEUED_LINE} {deployment.url}" in out
    found = RUN_LINE.search(out)
    assert found, out
    runs = deployment.graphql(MARKET_DATA_RUNS)["runsOrError"]["results"]
    [run] = [run for run in runs if run["runId"].startswith(found["id"])]
    assert run["status"] == "SUCCESS"
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["dagster/asset_partition_range_start"] == FIRST_DAY.isoformat()
    assert tags["dagster/asset_partition_range_end"] == LAST_DAY.isoformat()
    events = deployment.graphql(RUN_EVENTS, {"runId": run["runId"]})["logsForRun"]["events"]
    kinds = [event["__typename"] for event in events]
    assert "RunEnqueuedEvent" in kinds, "through the run queue, not in the command's process"
    assert kinds.index("RunEnqueuedEvent") < kinds.index("RunStartEvent")
    days = table(deployment.warehouse_url, "ticker_days")
    complete = days[days["status"] == "complete"]
    assert sorted(zip(complete["ticker"], complete["trade_date"], strict=True)) == sorted(
        (ticker, day) for ticker in TICKERS for day in SESSIONS
    )


def test_a_failed_queued_run_says_why_and_exits_1(watched: Deployment) -> None:
    deployment = watched
    code, out, err = materialize(deployment, deployment.url, "--select", "raw_quotes")

    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0].startswith(QUEUED_LINE)
    assert re.fullmatch(
        rf"run [0-9a-f]{{8}} FAILED: raw_quotes \[{FIRST_DAY} \.\. {LAST_DAY}\]", lines[1]
    )
    assert lines[2] == (
        "  market_data: raw_quotes is materialised with what is built from it in the same step: "
        "select validated_quotes, candles too"
    ), "the step's own words, read back from the instance"
    assert lines[3].startswith(
        f"  its events and logs: {deployment.url}/runs/{lines[1].split()[1]}"
    )


def test_a_webserver_that_does_not_answer_is_one_line_and_exit_status_1(
    watched: Deployment,
) -> None:
    deployment = watched
    nowhere = f"http://127.0.0.1:{free_port()}"

    code, out, err = materialize(deployment, nowhere)

    assert code == 1, out + err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("candle-pipeline: error: a Dagster daemon works the run queue")
    assert f"the webserver at {nowhere} did not take the run" in line
    assert "CANDLE_DAGSTER_UI_URL" in line
