"""Figure 3: backfills end to end through Dagster, against the orchestrator's own floor.

Each scenario is one asset backfill of market_timings and the three per-ticker assets over a
window of days, submitted to a real instance on PostgreSQL (the storage shipped in dagster.yaml)
and driven by the backfill daemon's own iterations; launched runs execute synchronously in the
same process (no run-worker start-up). The data come from the synthetic provider. The floor is
the same backfill of `bench.noop_definitions` (same assets, partitions, policies and checks; no
work, only the same check events).

Each backfill runs in a fresh process (`python -m bench.end_to_end ...`) so that its peak memory
is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from bench.common import Report, create_database, peak_rss_mib, section, tickers
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import (
    DEFAULT_EXCHANGE,
    ENV_DATABASE_URL,
    ENV_PARTITION_START,
    ENV_SOURCE,
    ENV_SYNTHETIC_INTERVAL,
    ENV_TIMINGS_START,
    PROJECT_DIR,
)

SECTION = "end-to-end"
REAL_MODULE = "candle_pipeline.definitions"
FLOOR_MODULE = "bench.noop_definitions"
PER_TICKER_ASSETS = ("raw_quotes", "validated_quotes", "candles")
MAX_ITERATIONS = 500
MEMORY_TARGET_MIB = 2048
SP500_TARGET_SECONDS = 300
FLOOR_TARGET_RATIO = 1.3
COMPLETED = "COMPLETED_SUCCESS"
# The per-ticker partitions span five years, as in the partition-space figures: the backfill
# daemon enumerates the whole space at every iteration, so it is part of every backfill's cost.
PARTITION_SPACE_DAYS = 5 * 365
MICROS_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Scenario:
    label: str
    ticker_count: int
    first_day: date
    trading_days: int
    interval: str


@dataclass(frozen=True)
class Result:
    seconds: float
    runs: int
    iterations: int
    status: str
    partitions: int
    trading_ticker_days: int
    register_seconds: float
    peak_rss_mib: float
    rows_written: int


def window(scenario: Scenario) -> list[date]:
    """Calendar days from the first day through the `trading_days`-th session."""
    from candle_pipeline.domain.sessions import market_timings  # noqa: PLC0415

    horizon = scenario.first_day + timedelta(days=scenario.trading_days * 2 + 10)
    timings = market_timings([DEFAULT_EXCHANGE], scenario.first_day, horizon)
    sessions = timings[timings["is_open"]]["session_date"].dt.date.tolist()
    last = sessions[scenario.trading_days - 1]
    return [
        scenario.first_day + timedelta(days=n) for n in range((last - scenario.first_day).days + 1)
    ]


def run(server: LocalPostgres, report: Report, scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        section(f"3. end to end: {scenario.label}")
        floor = _spawn(server, scenario, FLOOR_MODULE)
        real = _spawn(server, scenario, REAL_MODULE)
        name = scenario.label
        for kind, result in (("floor", floor), ("pipeline", real)):
            if result.status != COMPLETED:
                raise RuntimeError(f"{name}: the {kind} backfill ended {result.status}: no figure")
        report.add(
            SECTION,
            f"{name}: partitions per asset",
            real.partitions,
            "partitions",
            f"{real.trading_ticker_days} open ticker-days",
        )
        report.add(SECTION, f"{name}: pipeline wall time", real.seconds, "s", real.status)
        report.add(SECTION, f"{name}: no-op floor wall time", floor.seconds, "s", floor.status)
        report.add(
            SECTION,
            f"{name}: pipeline / floor",
            real.seconds / floor.seconds,
            "x",
            f"target <= {FLOOR_TARGET_RATIO}",
        )
        report.add(
            SECTION,
            f"{name}: runs launched",
            real.runs,
            "runs",
            f"floor {floor.runs}; {real.iterations} daemon iterations",
        )
        report.add(
            SECTION,
            f"{name}: ticker-days per second",
            real.trading_ticker_days / real.seconds,
            "ticker-days/s",
            f"floor {floor.trading_ticker_days / floor.seconds:,.0f}",
        )
        report.add(
            SECTION,
            f"{name}: peak memory of the backfill process",
            real.peak_rss_mib,
            "MiB",
            f"floor {floor.peak_rss_mib:,.0f} MiB; target < {MEMORY_TARGET_MIB}",
        )
        report.add(
            SECTION, f"{name}: registering the ticker partitions", real.register_seconds, "s"
        )
        above = real.seconds - floor.seconds
        report.add(
            SECTION,
            f"{name}: rows written to the warehouse",
            real.rows_written,
            "rows",
            f"{above:.1f} s above the floor: "
            f"{MICROS_PER_SECOND * above / max(real.rows_written, 1):.1f} us per row",
        )


def spawn_environment(server: LocalPostgres, scenario: Scenario) -> dict[str, str]:
    """The environment of a backfill process: a new warehouse, the synthetic source, and
    partitions spanning PARTITION_SPACE_DAYS."""
    space_start = date.today() - timedelta(days=PARTITION_SPACE_DAYS)
    return {
        **os.environ,
        ENV_DATABASE_URL: create_database(server, "bench_e2e_warehouse"),
        ENV_SOURCE: "synthetic",
        ENV_SYNTHETIC_INTERVAL: scenario.interval,
        ENV_PARTITION_START: space_start.isoformat(),
        ENV_TIMINGS_START: space_start.isoformat(),
    }


def _spawn(server: LocalPostgres, scenario: Scenario, module: str) -> Result:
    env = spawn_environment(server, scenario)
    dagster_url = create_database(server, "bench_e2e_dagster")
    command = [
        sys.executable,
        "-m",
        "bench.end_to_end",
        "--module",
        module,
        "--dagster-url",
        dagster_url,
        "--scenario",
        json.dumps({**asdict(scenario), "first_day": scenario.first_day.isoformat()}),
    ]
    started = time.perf_counter()
    completed = subprocess.run(
        command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{module} backfill failed:\n{completed.stderr[-4000:]}")
    result = Result(**json.loads(completed.stdout.strip().splitlines()[-1]))
    kind = "floor" if module == FLOOR_MODULE else "pipeline"
    print(f"  ({kind} process {time.perf_counter() - started:.0f} s in all)", flush=True)
    return result


def _worker(module: str, dagster_url: str, scenario: Scenario) -> Result:
    """In the child process: register tickers, submit the backfill, drive it to the end."""
    from candle_pipeline.domain.sessions import market_timings  # noqa: PLC0415
    from candle_pipeline.partitions import TICKERS_PARTITION_NAME, TickerDay  # noqa: PLC0415
    from candle_pipeline.settings import get_settings  # noqa: PLC0415
    from candle_pipeline_tests.backfill_driver import (  # noqa: PLC0415
        BackfillDriver,
        backfill_instance,
        shipped_storage,
    )

    days = window(scenario)
    symbols = tickers(scenario.ticker_count)
    timings = market_timings([DEFAULT_EXCHANGE], days[0], days[-1])
    open_days = int(timings["is_open"].sum())
    with backfill_instance(shipped_storage(dagster_url)) as instance:
        started = time.perf_counter()
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, symbols)
        register_seconds = time.perf_counter() - started
        with BackfillDriver.loaded(instance, module) as driver:
            per_ticker = [TickerDay(day, symbol).key for symbol in symbols for day in days]
            selection = {"market_timings": [day.isoformat() for day in days]}
            selection.update({name: per_ticker for name in PER_TICKER_ASSETS})
            quiet = {"loggers": {"console": {"config": {"log_level": get_settings().log_level}}}}
            backfill_id = driver.submit(selection, run_config=quiet)
            outcome = driver.run(backfill_id, MAX_ITERATIONS)
    return Result(
        seconds=outcome.seconds,
        runs=len(outcome.runs),
        iterations=outcome.iterations,
        status=outcome.backfill.status.value,
        partitions=len(per_ticker),
        trading_ticker_days=open_days * len(symbols),
        register_seconds=register_seconds,
        peak_rss_mib=peak_rss_mib(),
        rows_written=_warehouse_rows() if module == REAL_MODULE else 0,
    )


def _warehouse_rows() -> int:
    """Rows the pipeline wrote: every table of the warehouse."""
    from candle_pipeline.resources.warehouse import engine_for  # noqa: PLC0415
    from candle_pipeline.warehouse.summary import table_totals  # noqa: PLC0415

    return sum(table_totals(engine_for(os.environ[ENV_DATABASE_URL])).values())


def main() -> None:
    parser = argparse.ArgumentParser(description="one backfill, in its own process")
    parser.add_argument("--module", required=True)
    parser.add_argument("--dagster-url", required=True)
    parser.add_argument("--scenario", required=True)
    args = parser.parse_args()
    fields = json.loads(args.scenario)
    scenario = Scenario(**{**fields, "first_day": date.fromisoformat(fields["first_day"])})
    result = _worker(args.module, args.dagster_url, scenario)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
