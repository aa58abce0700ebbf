"""The one planner of work: the command line, the sensors and the schedules all express what
they want done as a `WorkRequest` (assets x days x the run config of `market_data`, with tags
saying who asked), and a request becomes runs of `market_data_job` in one way (`plan`): runs of
consecutive days, at most `partitions.days_per_run` each (market timings alone: a year).

Sensors and schedules hand the planned runs to Dagster as `RunRequest`s (`run_requests`). The
command line launches them through the instance (`launch`): queued like any other run while a
Dagster daemon works the run queue, executed in this process otherwise (the demo, the tests, a
machine where only the command line runs); the Dagster UI shows them either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

import dagster as dg
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

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
# The code location of workspace.yaml (and deploy/workspace.yaml) that serves the jobs.
LOCATION_NAME = "candle_pipeline"
REPOSITORY_NAME = "__repository__"
# The daemon that launches queued runs; its heartbeat says the run queue is worked.
RUN_QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
# How often the command line looks at a queued run it waits for.
QUEUED_RUN_POLL_SECONDS = 0.5


class RunRequestError(ValueError):
    """Arguments that cannot become a run: unknown asset, dates outside the partitions."""


class RunQueueError(RuntimeError):
    """The run queue is worked by a daemon, but its webserver refused or did not answer."""


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


@dataclass(frozen=True)
class WorkRequest:
    """Work wanted: `assets` (from the top of the chain down) x `days` x the run config of
    `market_data` (`tickers`: some watched tickers only; `refetch`: complete ticker-days too;
    `as_of`: the moment the run stands for), with `tags` saying who asked."""

    days: tuple[date, ...]
    assets: tuple[str, ...] = ALL_ASSETS
    tickers: tuple[str, ...] = ()
    refetch: bool = False
    as_of: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", tuple(sorted(set(self.days))))
        object.__setattr__(self, "assets", validate_selection(self.assets))
        object.__setattr__(self, "tickers", tuple(self.tickers))

    @classmethod
    def between(
        cls,
        start: date,
        end: date,
        *,
        assets: Sequence[str] = ALL_ASSETS,
        tickers: Sequence[str] = (),
        refetch: bool = False,
        as_of: datetime | None = None,
    ) -> WorkRequest:
        """The days `start`..`end`, refused when reversed or outside the day partitions."""
        selected = validate_selection(assets)
        validate_dates(start, end)
        return cls(tuple(days_between(start, end)), selected, tuple(tickers), refetch, as_of)

    @property
    def fetches_market_data(self) -> bool:
        return bool(set(self.assets) & set(MARKET_DATA_ASSETS))

    @property
    def run_config(self) -> dict[str, object]:
        if not self.fetches_market_data:
            return LOGGERS_RUN_CONFIG
        return run_config(self.tickers, self.refetch, self.as_of)


@dataclass(frozen=True)
class PlannedRun:
    """One run of `market_data_job`: its assets, its consecutive days, its config and tags."""

    assets: tuple[str, ...]
    span: DayRange
    run_config: Mapping[str, object]
    tags: Mapping[str, str]

    @property
    def asset_keys(self) -> list[dg.AssetKey]:
        return [dg.AssetKey(name) for name in self.assets]


def plan(request: WorkRequest) -> list[PlannedRun]:
    """The runs of `request`: consecutive days share a run, up to the days a run may hold
    (`partitions.days_per_run`; market timings alone are a few rows a day: a year)."""
    per_run = None if request.fetches_market_data else DAILY_BARS_DAYS_PER_RUN
    return [
        PlannedRun(request.assets, span, request.run_config, {**request.tags, **span.tags})
        for span in day_ranges(request.days, per_run)
    ]


def run_requests(request: WorkRequest, *, key: str) -> list[dg.RunRequest]:
    """The planned runs of `request` as run requests of `market_data_job` (sensors, schedules);
    `key` makes their run keys unique. A run of the whole chain is the whole job: no selection."""
    return [
        dg.RunRequest(
            run_key=f"{key}:{day_key(run.span.first)}:{day_key(run.span.last)}",
            asset_selection=None if run.assets == ALL_ASSETS else run.asset_keys,
            run_config=dict(run.run_config),
            tags=dict(run.tags),
        )
        for run in plan(request)
    ]


class Launcher(Protocol):
    """Runs one planned run to its end and says how it went."""

    def __call__(self, run: PlannedRun) -> RunOutcome: ...


def in_process(defs: dg.Definitions, instance: dg.DagsterInstance) -> Launcher:
    """Planned runs executed in this process, recorded in `instance`."""
    job = defs.resolve_implicit_global_asset_job_def()

    def execute(run: PlannedRun) -> RunOutcome:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=run.asset_keys,
            tags=dict(run.tags),
            run_config=dict(run.run_config),
            raise_on_error=False,
        )
        error = None if result.success else failure_message(result.all_events)
        return _outcome(run, result.run_id, result.success, error)

    return execute


@dataclass(frozen=True)
class RunQueue:
    """Planned runs submitted to the run queue through the webserver's GraphQL API (Dagster's
    public Python client), then waited for in `instance`: the daemon launches them when the
    queue and the pools allow, as it launches the runs of sensors and schedules."""

    instance: dg.DagsterInstance
    ui_url: str
    poll_seconds: float = QUEUED_RUN_POLL_SECONDS

    def __call__(self, run: PlannedRun) -> RunOutcome:
        address = urlsplit(self.ui_url)
        client = DagsterGraphQLClient(
            address.hostname or "localhost",
            port_number=address.port,
            use_https=address.scheme == "https",
            path_prefix=address.path.rstrip("/"),
        )
        try:
            run_id = client.submit_job_execution(
                MARKET_DATA_JOB,
                repository_location_name=LOCATION_NAME,
                repository_name=REPOSITORY_NAME,
                run_config=dict(run.run_config),
                tags=dict(run.tags),
                asset_selection=run.asset_keys,
            )
        except DagsterGraphQLClientError as error:
            reason = str(error).strip().splitlines()[0]
            raise RunQueueError(
                f"a Dagster daemon works the run queue, but the webserver at {self.ui_url} did "
                f"not take the run ({reason}): start it (`candle-pipeline ui`) or set "
                "CANDLE_DAGSTER_UI_URL to its address"
            ) from error
        finished = self._wait(run_id)
        success = finished.status == dg.DagsterRunStatus.SUCCESS
        return _outcome(run, run_id, success, None if success else self._error(finished))

    def _wait(self, run_id: str) -> dg.DagsterRun:
        while True:
            found = self.instance.get_run_by_id(run_id)
            if found is not None and found.is_finished:
                return found
            time.sleep(self.poll_seconds)

    def _error(self, finished: dg.DagsterRun) -> str:
        if finished.status == dg.DagsterRunStatus.CANCELED:
            return "the run was canceled"
        failures = self.instance.all_logs(finished.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        return failure_message(entry.dagster_event for entry in failures if entry.dagster_event)


def queue_worked(instance: dg.DagsterInstance) -> bool:
    """Whether a Dagster daemon works the instance's run queue (a recent heartbeat)."""
    status = instance.get_daemon_statuses([RUN_QUEUE_DAEMON]).get(RUN_QUEUE_DAEMON)
    return status is not None and bool(status.healthy)


def launch(
    request: WorkRequest,
    launch_run: Launcher,
    on_run_end: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """The planned runs of `request`, one after the other, each outcome handed to `on_run_end`
    as it ends; stops at the first failed run."""
    outcomes: list[RunOutcome] = []
    for run in plan(request):
        outcome = launch_run(run)
        outcomes.append(outcome)
        if on_run_end is not None:
            on_run_end(outcome)
        if not outcome.success:
            break
    return outcomes


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
    when it runs); see `launch`."""
    request = WorkRequest.between(
        start, end, assets=select, tickers=tickers, refetch=refetch, as_of=as_of
    )
    return launch(request, in_process(defs, instance), on_run_end)


def _outcome(run: PlannedRun, run_id: str, success: bool, error: str | None) -> RunOutcome:
    return RunOutcome(run_id, run.assets, run.span.first, run.span.last, success, error)


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
