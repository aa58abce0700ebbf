"""Figure 3a: what Dagster itself costs per materialised partition, and per partition's metadata.

One in-process run of a no-op asset over `tickers x days` ticker-day partitions (the project's
partitions, single-run policy), each in a fresh process, on:
- Dagster's defaults: the dagster-postgres storage (NullPool, events one by one);
- the storage shipped in dagster.yaml (`candle_pipeline.instance_storage`).
Then, on the shipped storage, the same run attaching per-partition metadata with Dagster's
`context.add_asset_metadata(partition_key=...)` and with `add_partition_metadata`.
(This module defines an asset: no `from __future__ import annotations`.)
"""

import argparse
import json
import os
import subprocess
import sys
import time

import dagster as dg

from bench.common import Report, create_database, section, tickers
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import PROJECT_DIR

SECTION = "floor"
DAYS_OF_JANUARY = 31
EVENT_BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"


def run(
    server: LocalPostgres, report: Report, ticker_count: int, days: int, metadata_partitions: int
) -> None:
    section(
        f"3a. orchestrator floor: one run of a no-op asset over {ticker_count * days} partitions"
    )
    default = _spawn(server, "default", "none", ticker_count, days)
    shipped = _spawn(server, "shipped", "none", ticker_count, days)
    count = ticker_count * days
    report.add(
        SECTION,
        "Dagster defaults (dagster-postgres)",
        default * 1000 / count,
        "ms/partition",
        f"{default:.1f} s for {count}",
    )
    report.add(
        SECTION,
        "shipped instance storage",
        shipped * 1000 / count,
        "ms/partition",
        f"{shipped:.1f} s for {count}",
    )
    report.add(SECTION, "defaults / shipped", default / shipped, "x")

    metadata_days = max(1, metadata_partitions // ticker_count)
    public = _spawn(server, "shipped", "public", ticker_count, metadata_days)
    helper = _spawn(server, "shipped", "helper", ticker_count, metadata_days)
    bare = _spawn(server, "shipped", "none", ticker_count, metadata_days)
    size = ticker_count * metadata_days
    report.add(
        SECTION,
        f"metadata for {size} partitions, context.add_asset_metadata",
        public - bare,
        "s",
        "run time above the same run without metadata",
    )
    report.add(
        SECTION,
        f"metadata for {size} partitions, add_partition_metadata",
        max(helper - bare, 0.0),
        "s",
        "run time above the same run without metadata",
    )


def _spawn(
    server: LocalPostgres, storage: str, metadata: str, ticker_count: int, days: int
) -> float:
    env = {key: value for key, value in os.environ.items() if key != EVENT_BATCH_ENV}
    command = [
        sys.executable,
        "-m",
        "bench.floor",
        "--storage",
        storage,
        "--metadata",
        metadata,
        "--tickers",
        str(ticker_count),
        "--days",
        str(days),
        "--dagster-url",
        create_database(server, "bench_floor"),
    ]
    completed = subprocess.run(
        command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"floor run failed:\n{completed.stderr[-4000:]}")
    return float(json.loads(completed.stdout.strip().splitlines()[-1])["seconds"])


def _worker(storage: str, metadata: str, ticker_count: int, days: int, dagster_url: str) -> float:
    from candle_pipeline.assets.metadata import add_partition_metadata  # noqa: PLC0415
    from dagster._core.storage.tags import (  # noqa: PLC0415
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from candle_pipeline.partitions import (  # noqa: PLC0415
        TICKERS_PARTITION_NAME,
        ticker_day_partitions,
    )
    from candle_pipeline_tests.backfill_driver import shipped_storage  # noqa: PLC0415

    @dg.asset(
        name="raw_quotes",
        partitions_def=ticker_day_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def noop(context: dg.AssetExecutionContext) -> None:
        by_partition = {key: {"rows": 0, "status": "fetched"} for key in context.partition_keys}
        if metadata == "public":
            for key, values in by_partition.items():
                context.add_asset_metadata(values, partition_key=key)
        elif metadata == "helper":
            add_partition_metadata(context, by_partition)

    if storage == "default":
        overrides = {"storage": {"postgres": {"postgres_url": dagster_url}}}
    else:
        overrides = {"storage": shipped_storage(dagster_url)}
    symbols = tickers(ticker_count)
    first, last = (
        f"2024-01-01|{symbols[0]}",
        f"2024-01-{min(days, DAYS_OF_JANUARY):02d}|{symbols[-1]}",
    )
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, symbols)
        job = dg.Definitions(assets=[noop]).resolve_implicit_global_asset_job_def()
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        seconds = time.perf_counter() - started
        if not result.success:
            raise RuntimeError("the floor run failed")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description="one floor run, in its own process")
    parser.add_argument("--storage", choices=["default", "shipped"], required=True)
    parser.add_argument("--metadata", choices=["none", "public", "helper"], required=True)
    parser.add_argument("--tickers", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--dagster-url", required=True)
    args = parser.parse_args()
    seconds = _worker(args.storage, args.metadata, args.tickers, args.days, args.dagster_url)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
