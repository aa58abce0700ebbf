"""Launching work: ranges of day partitions as Dagster runs, from the command line, the sensors
and the schedules alike.

A request is assets x consecutive days x run config (`tickers`, `refetch` of `market_data`); it
becomes runs of at most `partitions.days_per_run` days each. The command line executes them in
this process, recorded in the instance (the UI shows them like any other run); sensors and
schedules hand them to the run queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg

from candle_pipeline.checks.crosscheck import CROSSCHECK_JOB, CROSSCHECK_OP
from candle_pipeline.partitions import (
    DAILY_BARS_DAYS_PER_RUN,
    day_key,
    day_partitions,
    days_between,
    days_per_run,
)
from candle_pipeline.run_logs import LOGGERS_RUN_CONFIG
from candle_pipeline.settings import get_settings

TIMINGS_ASSET = "market_timings"
MARKET_DATA_ASSETS = ("raw_quotes", "validated_quotes", "candles")
ALL_ASSETS = (TIMINGS_ASSET, *MARKET_DATA_ASSETS)
MARKET_DATA_OP = "market_data"
MARKET_DATA_JOB = "market_data_job"
# Dagster's documented run tags that make one run cover a range of partitions.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class RunRequestError(ValueError):
    """Arguments that cannot become a run: unknown asset, dates outside the partitions."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    assets: tuple[str, ...]
    first_day: date
    last_day: date
    success: bool
    error: str | None


@dataclass(frozen=True)
class DayRange:
    """Consecutive days one run covers."""

    first: date
    last: date

    @property
    def tags(self) -> dict[str, str]:
        return {RANGE_START_TAG: day_key(self.first), RANGE_END_TAG: day_key(self.last)}


def validate_selection(select: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in select if name not in ALL_ASSETS]
    if unknown:
        raise RunRequestError(
            f"unknown asset(s) {', '.join(unknown)}; choose from {', '.join(ALL_ASSETS)}"
        )
    if not select:
        raise RunRequestError("select at least one asset")
    return tuple(name for name in ALL_ASSETS if name in select)


def validate_dates(start: date, end: date) -> None:
    """Refuse reversed ranges and days outside the day partitions."""
    if end < start:
        raise RunRequestError(f"the range is reversed: start {start} is after end {end}")
    partitions = day_partitions(get_settings())
    first = date.fromisoformat(partitions.get_first_partition_key())
    last = date.fromisoformat(partitions.get_last_partition_key())
    if start < first:
        raise RunRequestError(
            f"start {start} is before the first partition {first} (CANDLE_PARTITION_START)"
        )
    if end > last:
        raise RunRequestError(f"end {end} is after the last partition {last} (today)")


def day_ranges(days: Iterable[date], per_run: int | None = None) -> list[DayRange]:
    """`days` as runs of consecutive days, each at most `per_run` (default: the setting) long."""
    limit = per_run or days_per_run(get_settings())
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        last = ranges[-1] if ranges else None
        if (
            last is not None
            and last.last + timedelta(days=1) == day
            and (day - last.first).days < limit
        ):
            ranges[-1] = DayRange(last.first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges


def run_config(
    tickers: Sequence[str] = (), refetch: bool = False, as_of: datetime | None = None
) -> dict[str, object]:
    """The run config of `market_data` (every counted ticker unless `tickers` names some; the
    run stands for `as_of`, an intraday refresh's tick, when given, else for when it runs) and
    of the runs' one-line console."""
    config: dict[str, object] = {"tickers": list(tickers), "refetch": refetch}
    if as_of is not None:
        config["as_of"] = as_of.isoformat()
    return {**LOGGERS_RUN_CONFIG, "ops": {MARKET_DATA_OP: {"config": config}}}


def run_requests(
    days: Iterable[date],
    *,
    key: str,
    tickers: Sequence[str] = (),
    refetch: bool = False,
    tags: dict[str, str] | None = None,
    as_of: datetime | None = None,
) -> list[dg.RunRequest]:
    """Run requests of `jobs.market_data_job` covering `days`; `key` makes their run keys
    unique."""
    return [
        dg.RunRequest(
            run_key=f"{key}:{day_key(span.first)}:{day_key(span.last)}",
            run_config=run_config(tickers, refetch, as_of),
            tags={**(tags or {}), **span.tags},
        )
        for span in day_ranges(days)
    ]


def materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    start: date,
    end: date,
    *,
    select: Sequence[str] = ALL_ASSETS,
    tickers: Sequence[str] = (),
    refetch: bool = False,
    on_run_end: Callable[[RunOutcome], None] | None = None,
    as_of: datetime | None = None,
) -> list[RunOutcome]:
    """Materialise `select` for the days `start`..`end` in this process, as of `as_of` (default:
    when it runs), handing each run's outcome to `on_run_end` as it ends; stops at the first
    failed run."""
    assets = validate_selection(select)
    validate_dates(start, end)
    job = defs.resolve_implicit_global_asset_job_def()
    market_data = bool(set(assets) & set(MARKET_DATA_ASSETS))
    config = run_config(tickers, refetch, as_of) if market_data else LOGGERS_RUN_CONFIG
    # Market timings alone are a few rows a day: a run may cover a year of them.
    per_run = None if market_data else DAILY_BARS_DAYS_PER_RUN
    outcomes: list[RunOutcome] = []
    for span in day_ranges(days_between(start, end), per_run):
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(name) for name in assets],
            tags=span.tags,
            run_config=config,
            raise_on_error=False,
        )
        outcome = RunOutcome(
            run_id=result.run_id,
            assets=assets,
            first_day=span.first,
            last_day=span.last,
            success=result.success,
            error=None if result.success else failure_message(result.all_events),
        )
        outcomes.append(outcome)
        if on_run_end is not None:
            on_run_end(outcome)
        if not result.success:
            break
    return outcomes


@dataclass(frozen=True)
class CrossCheckOutcome:
    """A cross-check run: its id, whether it ended well and the day evaluations it recorded."""

    run_id: str
    success: bool
    error: str | None
    evaluations: list[dg.AssetCheckEvaluation]


def crosscheck(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tickers: Sequence[str],
    start: date,
    end: date,
    *,
    against: str | None = None,
) -> CrossCheckOutcome:
    """Cross-check the stored days `start`..`end` of `tickers` in one run of `crosscheck_job`,
    in this process, recorded in the instance."""
    validate_dates(start, end)
    if not tickers:
        raise RunRequestError("name the tickers to cross-check (--tickers A,B)")
    config = {
        "tickers": list(tickers),
        "start": day_key(start),
        "end": day_key(end),
        "against": against,
    }
    result = defs.get_job_def(CROSSCHECK_JOB).execute_in_process(
        instance=instance,
        run_config={**LOGGERS_RUN_CONFIG, "ops": {CROSSCHECK_OP: {"config": config}}},
        raise_on_error=False,
    )
    return CrossCheckOutcome(
        run_id=result.run_id,
        success=result.success,
        error=None if result.success else failure_message(result.all_events),
        evaluations=list(result.get_asset_check_evaluations()),
    )


def cancel_waiting_runs(instance: dg.DagsterInstance, tickers: Sequence[str]) -> list[str]:
    """Cancel the runs still waiting in the queue that would fetch only `tickers` (a ticker's
    backfill, its retries), so that removing a ticker ends its pending work; runs already going
    finish their days. The ids of the runs cancelled."""
    removed = set(tickers)
    waiting = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=MARKET_DATA_JOB,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    cancelled = []
    for run in waiting:
        named = run.run_config.get("ops", {}).get(MARKET_DATA_OP, {}).get("config", {})
        if named.get("tickers") and set(named["tickers"]) <= removed:
            instance.report_run_canceled(
                run, message=f"{', '.join(sorted(named['tickers']))} removed from the watch list"
            )
            cancelled.append(run.run_id)
    return cancelled


def failure_message(events: Iterable[dg.DagsterEvent]) -> str:
    """The root cause of each failed step among `events`, without Dagster's wrapping."""
    messages = []
    for event in events:
        if not (event.is_step_failure and event.step_failure_data):
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            messages.append(
                f"{event.step_key}: {_without_class_name(error.message, error.cls_name)}"
            )
    return "\n".join(messages) or "the run failed; see the Dagster UI for its logs"


def _without_class_name(message: str, cls_name: str | None) -> str:
    """An error's own words, without the `package.module.ErrorClass: ` Dagster puts first."""
    name, separator, rest = message.strip().partition(": ")
    return rest if separator and name.split(".")[-1] == cls_name else message.strip()
