"""Figure 4: backfills and daily updates end to end through Dagster, against the orchestrator's
own floor.

Each backfill scenario is one asset backfill of market_timings and the three market-data assets
over a range of day partitions, submitted to a real instance on PostgreSQL (the storage shipped
in dagster.yaml) and driven by the backfill daemon's own iterations; launched runs execute
synchronously in the same process (no run-worker start-up). The data come from the synthetic
provider; its share of the time is measured by making the same bars again, alone. The floor is
the same backfill of `bench.noop_definitions` (same assets, partitions, policy and checks; no
work, only the same events).

A scenario may also measure, on the warehouse it filled:
- the idempotent repeat: the same backfill again (every ticker-day complete: no provider call);
- the daily update: the after-close schedule of the default exchange evaluated right after the
  next session's close, and the run it requests executed.

Each scenario runs in a fresh process (`python -m bench.end_to_end ...`) so that its peak memory
is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, timedelta

from bench.common import Report, child, create_database, peak_rss_mib, section, tickers
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.providers.synthetic import DEFAULT_MIC
from candle_pipeline.settings import (
    ENV_DATABASE_URL,
    ENV_LOG_LEVEL,
    ENV_PARTITION_START,
    ENV_SOURCE,
    ENV_SYNTHETIC_INTERVAL,
)

SECTION = "end-to-end"
REAL_MODULE = "candle_pipeline.definitions"
FLOOR_MODULE = "bench.noop_definitions"
ASSETS = ("market_timings", "raw_quotes", "validated_quotes", "candles")
MAX_ITERATIONS = 2_000
COMPLETED = "COMPLETED_SUCCESS"
MICROS_PER_SECOND = 1_000_000
# The day partitions start with the earliest scenario, as CANDLE_PARTITION_START does.
PARTITION_START = date(2000, 1, 1)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# Longer than any closure: the next session after a scenario's days is found within it.
SESSION_SEARCH_DAYS = 21


@dataclass(frozen=True)
class Scenario:
    label: str
    ticker_count: int
    first_day: date
    last_day: date
    interval: str
    seconds_target: float
    # The date x ticker design's throughput at this bar width (docs/benchmarks.md, 2026-11-24).
    previous_ticker_days_per_second: float | None = None
    memory_target_mib: float | None = None
    repeat_target_seconds: float | None = None
    daily_update_target_seconds: float | None = None


@dataclass(frozen=True)
class Result:
    seconds: float
    runs: int
    iterations: int
    status: str
    days: int
    ticker_days: int
    peak_rss_mib: float
    rows_written: int
    provider_seconds: float
    repeat_seconds: float | None
    repeat_provider_requests: int | None
    daily_update_seconds: float | None
    daily_update_ticker_days: int | None


def run(server: LocalPostgres, report: Report, scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        section(f"4. end to end: {scenario.label}")
        floor = _spawn(server, scenario, FLOOR_MODULE)
        real = _spawn(server, scenario, REAL_MODULE)
        name = scenario.label
        for kind, result in (("floor", floor), ("pipeline", real)):
            if result.status != COMPLETED:
                raise RuntimeError(f"{name}: the {kind} backfill ended {result.status}: no figure")
        _report(report, scenario, real, floor)


def _report(report: Report, scenario: Scenario, real: Result, floor: Result) -> None:
    name = scenario.label

    def add(figure: str, value: float, unit: str, note: str = "") -> None:
        report.add(SECTION, f"{name}: {figure}", value, unit, note)

    add(
        "day partitions per asset",
        real.days,
        "partitions",
        f"{real.ticker_days:,} open ticker-days",
    )
    add("pipeline wall time", real.seconds, "s", f"target < {scenario.seconds_target:.0f}")
    add("no-op floor wall time", floor.seconds, "s", f"{floor.runs} runs")
    add("pipeline / floor", real.seconds / floor.seconds, "x")
    add("runs launched", real.runs, "runs", f"{real.iterations} daemon iterations")
    rate = real.ticker_days / real.seconds
    previous = scenario.previous_ticker_days_per_second
    add(
        "ticker-days per second",
        rate,
        "ticker-days/s",
        f"{rate / previous:.1f}x the date x ticker design's {previous}" if previous else "",
    )
    add(
        "synthetic source's share (the same bars made alone)",
        100 * real.provider_seconds / real.seconds,
        "%",
        f"{real.provider_seconds:.1f} s",
    )
    target = f"target < {scenario.memory_target_mib:,.0f}" if scenario.memory_target_mib else ""
    add("peak memory of the backfill process", real.peak_rss_mib, "MiB", target)
    add(
        "rows written to the warehouse",
        real.rows_written,
        "rows",
        f"{MICROS_PER_SECOND * (real.seconds - floor.seconds) / max(real.rows_written, 1):.1f} "
        "us per row above the floor",
    )
    if real.repeat_seconds is not None and floor.repeat_seconds is not None:
        add(
            "the same backfill again (all complete)",
            real.repeat_seconds,
            "s",
            f"{real.repeat_provider_requests} provider requests; floor "
            f"{floor.repeat_seconds:.1f} s; target < {scenario.repeat_target_seconds:.0f}",
        )
    if real.daily_update_seconds is not None and floor.daily_update_seconds is not None:
        add(
            "after-close run of the next session",
            real.daily_update_seconds,
            "s",
            f"{real.daily_update_ticker_days} ticker-days; floor "
            f"{floor.daily_update_seconds:.1f} s; target < "
            f"{scenario.daily_update_target_seconds:.0f}",
        )


def scenario_environment(server: LocalPostgres, scenario: Scenario) -> dict[str, str]:
    """The environment of a scenario's process: a new warehouse, the synthetic source."""
    return {
        **os.environ,
        ENV_DATABASE_URL: create_database(server, "bench_e2e_warehouse"),
        ENV_SOURCE: "synthetic",
        ENV_SYNTHETIC_INTERVAL: scenario.interval,
        ENV_PARTITION_START: PARTITION_START.isoformat(),
        ENV_LOG_LEVEL: "ERROR",
    }


def scenario_argument(scenario: Scenario) -> str:
    return json.dumps(
        {
            **asdict(scenario),
            "first_day": scenario.first_day.isoformat(),
            "last_day": scenario.last_day.isoformat(),
        }
    )


def _spawn(server: LocalPostgres, scenario: Scenario, module: str) -> Result:
    env = scenario_environment(server, scenario)
    arguments = [
        "--module",
        module,
        "--dagster-url",
        create_database(server, "bench_e2e_dagster"),
        "--scenario",
        scenario_argument(scenario),
    ]
    started = time.perf_counter()
    result = Result(**child("bench.end_to_end", arguments, env, f"{module} backfill"))
    kind = "floor" if module == FLOOR_MODULE else "pipeline"
    print(f"  ({kind} process {time.perf_counter() - started:.0f} s in all)", flush=True)
    return result


def _worker(module: str, dagster_url: str, scenario: Scenario) -> Result:
    """In the child process: watch the tickers, submit the backfill, drive it to the end; then
    the repeat and the daily update when the scenario asks for them."""
    from candle_pipeline.partitions import days_between  # noqa: PLC0415
    from candle_pipeline_tests.backfill_driver import (  # noqa: PLC0415
        BackfillDriver,
        backfill_instance,
        shipped_storage,
    )

    days = [day.isoformat() for day in days_between(scenario.first_day, scenario.last_day)]
    symbols = tickers(scenario.ticker_count)
    pipeline = module == REAL_MODULE
    if pipeline:
        _watch(symbols, scenario.first_day)
    with (
        backfill_instance(shipped_storage(dagster_url)) as instance,
        BackfillDriver.loaded(instance, module) as driver,
    ):
        selection = dict.fromkeys(ASSETS, days)
        outcome = driver.run(driver.submit(selection, run_config=QUIET), MAX_ITERATIONS)
        repeat_seconds = repeat_requests = None
        if scenario.repeat_target_seconds is not None:
            again = driver.run(driver.submit(selection, run_config=QUIET), MAX_ITERATIONS)
            repeat_seconds = again.seconds
            repeat_requests = _provider_requests(instance, again.runs, len(days)) if pipeline else 0
        update_seconds = update_ticker_days = None
        if scenario.daily_update_target_seconds is not None:
            update_seconds, update_days = _daily_update(module, instance, scenario)
            update_ticker_days = update_days * len(symbols)
    return Result(
        seconds=outcome.seconds,
        runs=len(outcome.runs),
        iterations=outcome.iterations,
        status=outcome.backfill.status.value,
        days=len(days),
        ticker_days=_open_sessions(scenario.first_day, scenario.last_day) * len(symbols),
        peak_rss_mib=peak_rss_mib(),
        rows_written=_warehouse_rows() if pipeline else 0,
        provider_seconds=_synthetic_seconds(scenario, symbols) if pipeline else 0.0,
        repeat_seconds=repeat_seconds,
        repeat_provider_requests=repeat_requests,
        daily_update_seconds=update_seconds,
        daily_update_ticker_days=update_ticker_days,
    )


def _watch(symbols: list[str], first_day: date) -> None:
    from candle_pipeline_tests.conftest import watch  # noqa: PLC0415

    watch(os.environ[ENV_DATABASE_URL], symbols, first_day)


def _open_sessions(first: date, last: date) -> int:
    from candle_pipeline.domain.sessions import market_timings  # noqa: PLC0415

    return int(market_timings([DEFAULT_MIC], first, last)["is_open"].sum())


def _synthetic_seconds(scenario: Scenario, symbols: list[str]) -> float:
    """The same bars made again by the synthetic source alone: one fetch per ticker and run."""
    from candle_pipeline.partitions import days_between  # noqa: PLC0415
    from candle_pipeline.providers.synthetic import SyntheticProvider  # noqa: PLC0415
    from candle_pipeline.runs import day_ranges  # noqa: PLC0415

    provider = SyntheticProvider(interval=scenario.interval, mic=DEFAULT_MIC)
    spans = day_ranges(days_between(scenario.first_day, scenario.last_day))
    started = time.perf_counter()
    for span in spans:
        days = days_between(span.first, span.last)
        for symbol in symbols:
            provider.fetch_bars(symbol, days)
    return time.perf_counter() - started


def _provider_requests(instance, runs, days: int) -> int:
    """Provider requests the runs made: each run's raw_quotes materialisations carry its total."""
    import dagster as dg  # noqa: PLC0415

    wanted = {run.run_id for run in runs}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_quotes")), limit=2 * days
    ).records
    per_run = {
        record.run_id: record.asset_materialization.metadata["run_provider_requests"].value
        for record in records
        if record.run_id in wanted
    }
    return sum(per_run.values())


def _daily_update(module: str, instance, scenario: Scenario) -> tuple[float, int]:
    """The after-close schedule of the default exchange, ticked after the session that follows
    the scenario's days, and the run it requests, executed as the run launcher would (the floor
    runs the same days)."""
    import importlib  # noqa: PLC0415

    import dagster as dg  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    from candle_pipeline.domain.sessions import market_timings  # noqa: PLC0415
    from candle_pipeline.runs import DayRange  # noqa: PLC0415
    from candle_pipeline.settings import DEFAULT_SCHEDULE_DELAY_MINUTES  # noqa: PLC0415

    first = scenario.last_day + timedelta(days=1)
    horizon = first + timedelta(days=SESSION_SEARCH_DAYS)
    timings = market_timings([DEFAULT_MIC], first, horizon)
    session = timings[timings["is_open"]].iloc[0]
    tick = session["close_utc"] + pd.Timedelta(minutes=DEFAULT_SCHEDULE_DELAY_MINUTES + 1)
    session_day = pd.Timestamp(session["session_date"]).date()
    defs = importlib.import_module(module).defs
    if not isinstance(defs, dg.Definitions):
        defs = defs()  # the real location's `@dg.definitions` function
    job = defs.resolve_implicit_global_asset_job_def()
    started = time.perf_counter()
    if module == REAL_MODULE:
        schedule = defs.get_schedule_def(f"{DEFAULT_MIC.lower()}_after_close")
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick.to_pydatetime().astimezone(UTC),
            resources={"warehouse": defs.resources["warehouse"]},
        ) as context:
            [request] = list(schedule(context))
        run_config, tags = {**request.run_config, **QUIET}, request.tags
    else:
        run_config, tags = QUIET, DayRange(first, session_day).tags
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in ASSETS],
        run_config=run_config,
        tags=tags,
    )
    seconds = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"the after-close run failed in {module}")
    return seconds, (session_day - scenario.last_day).days


def _warehouse_rows() -> int:
    """Rows the pipeline wrote: every table of the warehouse."""
    from candle_pipeline.resources.warehouse import WarehouseResource  # noqa: PLC0415

    warehouse = WarehouseResource(database_url=os.environ[ENV_DATABASE_URL])
    return sum(warehouse.table_totals().values())


def main() -> None:
    parser = argparse.ArgumentParser(description="one scenario, in its own process")
    parser.add_argument("--module", required=True)
    parser.add_argument("--dagster-url", required=True)
    parser.add_argument("--scenario", required=True)
    args = parser.parse_args()
    fields = json.loads(args.scenario)
    scenario = Scenario(
        **{
            **fields,
            "first_day": date.fromisoformat(fields["first_day"]),
            "last_day": date.fromisoformat(fields["last_day"]),
        }
    )
    print(json.dumps(asdict(_worker(args.module, args.dagster_url, scenario))))


if __name__ == "__main__":
    main()
