"""Figure 5: the partition space at scale, the project's day partitions against the previous
release's `date x ticker` partitions (bench/space_designs.py, the baseline).

With the project's own dagster.yaml instance, the design's code location, and
`CANDLE_PARTITION_START` at `start`:
1. record a materialisation of `raw_quotes` for every partition but those of the last
   MISSING_DAYS days (bulk-inserted events: most of the space is materialised, as after years of
   use); the baseline first registers the tickers as dynamic partitions;
2. start the real `dagster-webserver` and ask it, as the UI does, for the asset's partition
   status (cold, which builds Dagster's status cache, then warm);
3. launch through its GraphQL API a backfill of the missing days only, then one of all
   partitions, with the webserver's memory;
4. let the backfill daemon's own code plan each backfill (its first iteration, in a fresh
   process, runs queued but not executed): time, runs requested, memory.

Each step that holds the whole space runs in its own process, so peak memory is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import requests

from bench.common import (
    BYTES_PER_MIB,
    Report,
    child,
    create_database,
    peak_rss_mib,
    section,
    tickers,
)
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import (
    ENV_DAGSTER_DATABASE_URL,
    ENV_DAGSTER_HOME,
    ENV_DATABASE_URL,
    ENV_PARTITION_START,
    ENV_SOURCE,
    ENV_SYNTHETIC_INTERVAL,
    PROJECT_DIR,
)

SECTION = "partition space"
ASSET = "raw_quotes"
# The designs compared: the project's own, and the previous release's as a no-op baseline.
DAYS = "days"
BASELINE = "date-x-ticker"
DESIGNS = (DAYS, BASELINE)
ENV_DESIGN = "CANDLE_BENCH_SPACE_DESIGN"
DESIGN_MODULES = {DAYS: "candle_pipeline.definitions", BASELINE: "bench.space_designs"}
MISSING_DAYS = 20
WEBSERVER_START_TIMEOUT_SECONDS = 300
GRAPHQL_TIMEOUT_SECONDS = 900
POLL_SECONDS = 0.5
# The day design's targets at 523 tickers since 2000, and how much better than the baseline each
# figure must be (the baseline measured at a fraction of that size: its full size is millions of
# partitions).
STATUS_COLD = "partition status via GraphQL, cold (builds the cache)"
STATUS_WARM = "partition status via GraphQL, warm"
LAUNCH_ALL = "launch an all-partitions backfill via GraphQL"
PLAN_ALL = "daemon plans the all-partitions backfill (first iteration)"
WEBSERVER_MEMORY = "webserver peak memory"
DAEMON_MEMORY = "daemon memory planning the all-partitions backfill"
MEMORY_TARGET_MIB = 500
TARGETS = {
    STATUS_COLD: 2,
    STATUS_WARM: 0.5,
    LAUNCH_ALL: 3,
    PLAN_ALL: 15,
    WEBSERVER_MEMORY: MEMORY_TARGET_MIB,
    DAEMON_MEMORY: MEMORY_TARGET_MIB,
}
MIN_RATIO = 20
KIB = 1024
HTTP_OK = 200
INSERT_CHUNK = 100_000

PARTITION_STATUS_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startKey endKey } }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startKey endKey } }
              ... on DefaultPartitionStatuses {
                materializedPartitions materializingPartitions failedPartitions
              }
            }
          }
        }
      }
    }
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

LOCATION_STATUS = """
query { workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""


def run(server: LocalPostgres, report: Report, ticker_count: int, start: date, design: str) -> None:
    section(f"5. partition space, {design}: {ticker_count} tickers from {start}")
    home = Path(tempfile.mkdtemp(prefix="candle-bench-home-"))
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        ENV_DAGSTER_HOME: str(home),
        ENV_DATABASE_URL: create_database(server, "bench_space_warehouse"),
        ENV_DAGSTER_DATABASE_URL: create_database(server, "bench_space_dagster"),
        ENV_PARTITION_START: start.isoformat(),
        # A source of daily bars, as for a history of years: a backfill run covers a year.
        ENV_SOURCE: "synthetic",
        ENV_SYNTHETIC_INTERVAL: "1d",
        ENV_DESIGN: design,
    }

    def add(name: str, value: float, unit: str, note: str = "") -> None:
        if design == DAYS and name in TARGETS:
            target = TARGETS[name]
            verdict = "met" if value < target else "MISSED"
            note = "; ".join(filter(None, [note, f"target < {target:g} {unit}: {verdict}"]))
        report.add(SECTION, f"{design}: {name}", value, unit, note)

    try:
        populated = _child(env, "populate", str(ticker_count))
        add(
            "partitions of one asset",
            populated["partitions"],
            "partitions",
            f"from {start}, {ticker_count} tickers",
        )
        if design == BASELINE:
            add("registering the ticker partitions", populated["register_seconds"], "s")
        add(
            "materialisations recorded (bulk insert)",
            populated["materialized"],
            "events",
            f"{populated['insert_seconds']:.0f} s; the last {MISSING_DAYS} days missing",
        )
        launched = _with_webserver(env, add, populated)
        for kind, backfill_id in launched.items():
            planned = _child(env, "plan", backfill_id)
            add(
                f"daemon plans the {kind} backfill (first iteration)",
                planned["seconds"],
                "s",
                f"{planned['runs']} runs requested",
            )
            add(
                f"daemon memory planning the {kind} backfill",
                planned["peak_rss_mib"],
                "MiB",
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def compare(report: Report) -> None:
    """Each targeted figure of the baseline over the day design's, when both were measured."""
    measured = {figure.name: figure for figure in report.figures if figure.section == SECTION}
    sizes = {
        design: measured[f"{design}: partitions of one asset"]
        for design in DESIGNS
        if f"{design}: partitions of one asset" in measured
    }
    if len(sizes) < len(DESIGNS):
        return
    for name in TARGETS:
        days, baseline = measured[f"{DAYS}: {name}"], measured[f"{BASELINE}: {name}"]
        ratio = baseline.value / days.value
        report.add(
            SECTION,
            f"{BASELINE} / {DAYS}: {name}",
            ratio,
            "x",
            f"{BASELINE} {sizes[BASELINE].value:,.0f} partitions ({sizes[BASELINE].note}), "
            f"{DAYS} {sizes[DAYS].value:,.0f} ({sizes[DAYS].note}); a lower bound where the "
            f"baseline covers fewer days; target >= {MIN_RATIO}: "
            + ("met" if ratio >= MIN_RATIO else "MISSED"),
        )


def _child(env: dict[str, str], step: str, argument: str) -> dict:
    return child("bench.partition_space", [step, argument], env, f"partition-space step {step}")


def _with_webserver(
    env: dict[str, str], add: Callable[..., None], populated: dict
) -> dict[str, str]:
    port = _free_port()
    workspace = PROJECT_DIR / "workspace.yaml"
    if env[ENV_DESIGN] == BASELINE:
        workspace = Path(__file__).with_name("space_workspace.yaml")
    webserver = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(workspace),
        ],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        started = time.perf_counter()
        _wait_for_location(url)
        add(
            "webserver start with the code location loaded",
            time.perf_counter() - started,
            "s",
        )
        variables = {"assetKey": {"path": [ASSET]}}
        cold, answer = _timed_graphql(url, PARTITION_STATUS_QUERY, variables)
        warm, _ = _timed_graphql(url, PARTITION_STATUS_QUERY, variables)
        ranges = answer["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
        add(STATUS_COLD, cold, "s", f"{len(ranges)} status ranges")
        add(STATUS_WARM, warm, "s")
        launched = {}
        missing = {
            "partitionsByAssets": [
                {
                    "assetKey": {"path": [ASSET]},
                    "partitions": {
                        "range": {
                            "start": populated["missing_start"],
                            "end": populated["missing_end"],
                        }
                    },
                }
            ]
        }
        seconds, answer = _timed_graphql(url, LAUNCH_BACKFILL, {"params": missing})
        launched["missing-recent-days"] = _backfill_id(answer)
        add(
            "launch a backfill of the missing recent days via GraphQL",
            seconds,
            "s",
            f"{populated['missing']} partitions",
        )
        everything = {"allPartitions": True, "assetSelection": [{"path": [ASSET]}]}
        seconds, answer = _timed_graphql(url, LAUNCH_BACKFILL, {"params": everything})
        launched["all-partitions"] = _backfill_id(answer)
        add(
            LAUNCH_ALL,
            seconds,
            "s",
            f"{populated['partitions']} partitions",
        )
        add(WEBSERVER_MEMORY, _peak_mib(webserver.pid), "MiB")
        return launched
    finally:
        os.killpg(webserver.pid, signal.SIGTERM)
        try:
            webserver.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(webserver.pid, signal.SIGKILL)
            webserver.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_location(url: str) -> None:
    deadline = time.monotonic() + WEBSERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            answer = _graphql(url, LOCATION_STATUS, {})
        except requests.RequestException:
            time.sleep(POLL_SECONDS)
            continue
        entries = answer["workspaceOrError"]["locationEntries"]
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
            if errors:
                raise RuntimeError(f"code location failed: {errors[0]['locationOrLoadError']}")
            return
        time.sleep(POLL_SECONDS)
    raise TimeoutError("the webserver did not load the code location in time")


def _graphql(url: str, query: str, variables: dict) -> dict:
    response = requests.post(
        url, json={"query": query, "variables": variables}, timeout=GRAPHQL_TIMEOUT_SECONDS
    )
    if response.status_code != HTTP_OK:
        raise RuntimeError(f"GraphQL answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def _timed_graphql(url: str, query: str, variables: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    answer = _graphql(url, query, variables)
    return time.perf_counter() - started, answer


def _backfill_id(answer: dict) -> str:
    result = answer["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {result}")
    return result["backfillId"]


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KIB / BYTES_PER_MIB
    return float("nan")


def _populate(ticker_count: int) -> dict:
    """In a child: record materialisations of all partitions but the last days' (the baseline
    registers its tickers first)."""
    import dagster as dg  # noqa: PLC0415
    import sqlalchemy as sa  # noqa: PLC0415

    from candle_pipeline.partitions import day_partitions  # noqa: PLC0415
    from candle_pipeline.settings import get_settings  # noqa: PLC0415

    baseline = os.environ[ENV_DESIGN] == BASELINE
    symbols = tickers(ticker_count)
    days = [date.fromisoformat(key) for key in day_partitions(get_settings()).get_partition_keys()]
    recent = date.today() - timedelta(days=MISSING_DAYS)
    materialized_days = [day.isoformat() for day in days if day < recent]
    missing_days = [day.isoformat() for day in days if day >= recent]
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        if baseline:
            from bench.space_designs import (  # noqa: PLC0415
                TICKERS_PARTITION_NAME,
                ticker_day_key,
            )

            instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, symbols)
            keys = [ticker_day_key(day, s) for s in symbols for day in materialized_days]
            missing = [ticker_day_key(day, s) for s in symbols for day in missing_days]
        else:
            keys, missing = materialized_days, missing_days
        register_seconds = time.perf_counter() - started

        started = time.perf_counter()
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=ASSET, partition=keys[0])
        )
        engine = instance.event_log_storage._engine
        copy_template = sa.text(
            "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp, step_key, "
            "asset_key, partition) SELECT run_id, replace(event, :template, k), "
            "dagster_event_type, timestamp, step_key, asset_key, k FROM event_logs, "
            "unnest(CAST(:keys AS text[])) AS k WHERE dagster_event_type = :kind "
            "AND partition = :template"
        )
        with engine.begin() as conn:
            for offset in range(1, len(keys), INSERT_CHUNK):
                conn.execute(
                    copy_template,
                    {
                        "template": keys[0],
                        "keys": keys[offset : offset + INSERT_CHUNK],
                        "kind": "ASSET_MATERIALIZATION",
                    },
                )
        insert_seconds = time.perf_counter() - started
    return {
        "partitions": len(keys) + len(missing),
        "materialized": len(keys),
        "missing": len(missing),
        "missing_start": missing[0],
        "missing_end": missing[-1],
        "register_seconds": register_seconds,
        "insert_seconds": insert_seconds,
    }


def _plan(backfill_id: str) -> dict:
    """In a child: one backfill-daemon iteration over `backfill_id`, runs queued, not run."""
    import logging  # noqa: PLC0415

    import dagster as dg  # noqa: PLC0415
    from dagster._core.definitions.partitions.context import (  # noqa: PLC0415
        partition_loading_context,
    )
    from dagster._core.execution.asset_backfill import (  # noqa: PLC0415
        execute_asset_backfill_iteration,
    )
    from dagster._core.execution.backfill import BulkActionStatus  # noqa: PLC0415
    from dagster._core.instance.ref import InstanceRef  # noqa: PLC0415
    from dagster._core.storage.tags import BACKFILL_ID_TAG  # noqa: PLC0415

    from candle_pipeline_tests.backfill_driver import BackfillDriver  # noqa: PLC0415

    queued = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    ref = InstanceRef.from_dir(os.environ[ENV_DAGSTER_HOME], overrides={"run_coordinator": queued})
    module = DESIGN_MODULES[os.environ[ENV_DESIGN]]
    with (
        dg.DagsterInstance.from_ref(ref) as instance,
        BackfillDriver.loaded(instance, module) as driver,
    ):
        backfill = instance.get_backfill(backfill_id)
        started = time.perf_counter()
        with partition_loading_context(dynamic_partitions_store=instance):
            asyncio.run(
                execute_asset_backfill_iteration(
                    backfill, logging.getLogger("bench.plan"), driver.workspace, instance
                )
            )
        seconds = time.perf_counter() - started
        runs = instance.get_runs_count(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        instance.update_backfill(
            instance.get_backfill(backfill_id).with_status(BulkActionStatus.CANCELED)
        )
    return {"seconds": seconds, "runs": runs, "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description="one step of the partition-space benchmark")
    parser.add_argument("step", choices=["populate", "plan"])
    parser.add_argument("argument")
    args = parser.parse_args()
    result = _populate(int(args.argument)) if args.step == "populate" else _plan(args.argument)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
