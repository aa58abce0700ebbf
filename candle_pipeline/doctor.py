"""`candle-pipeline doctor`: is this deployment healthy? Says what is wrong, in words.

It starts nothing and writes no data: it reads the settings, connects to the warehouse and the
Dagster instance, and compares what it finds with what the project needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import sqlalchemy as sa

from candle_pipeline import local_env
from candle_pipeline.pools import LIMIT_VARIABLES, current_limits, pools_in_use, wanted_limits
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import (
    ENV_DAGSTER_DATABASE_URL,
    ENV_DAGSTER_HOME,
    OperationsSettings,
    Settings,
    SettingsError,
    mask_url,
    settings_in_use,
)

OK = "ok"
PROBLEM = "PROBLEM"
NOTE = "note"
# Status names of a schedule or sensor switched on and of a backfill no daemon has picked up:
# Dagster exports no type for either status, so they are compared by name.
INSTIGATOR_RUNNING = "RUNNING"
BACKFILL_REQUESTED = "REQUESTED"
# How long a database may take to answer.
DOCTOR_CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Finding:
    """One thing the doctor looked at: `ok`, a `note` worth knowing, or a `PROBLEM`."""

    area: str
    state: str
    message: str


@dataclass(frozen=True)
class Context:
    """What the checks after the settings look at."""

    settings: Settings
    operations: OperationsSettings
    warehouse: WarehouseResource
    dagster_url: str
    dagster_home: Path
    expect_daemon: bool


def diagnose(expect_daemon: bool = False) -> list[Finding]:
    """Every finding, in the order a person would fix them; stops where nothing further can run."""
    try:
        settings = Settings.from_env()
        operations = OperationsSettings.from_env()
    except SettingsError as error:
        return [Finding("settings", PROBLEM, str(error))]
    findings = [_settings_finding(settings, operations)]
    if settings.embedded_database and not local_env.embedded_server(settings).is_running():
        findings.append(
            Finding(
                "database",
                PROBLEM,
                f"the embedded PostgreSQL of {settings.state_dir} is not running: start it with "
                "`candle-pipeline db up` (or set CANDLE_DATABASE_URL to a server)",
            )
        )
        return findings
    warehouse_url, dagster_url = local_env.database_urls(settings)
    context = Context(
        settings=settings,
        operations=operations,
        warehouse=WarehouseResource(
            database_url=warehouse_url, connect_timeout_seconds=DOCTOR_CONNECT_TIMEOUT_SECONDS
        ),
        dagster_url=dagster_url,
        dagster_home=settings.dagster_home or local_env.default_dagster_home(settings),
        expect_daemon=expect_daemon,
    )
    findings.extend(_provider_findings(settings))
    findings.extend(_warehouse_findings(context))
    findings.extend(_instance_findings(context))
    return findings


def report(findings: Sequence[Finding]) -> str:
    width = max(len(finding.area) for finding in findings)
    lines = [
        f"{finding.state:<8}{finding.area:<{width}}  {finding.message}" for finding in findings
    ]
    problems = sum(finding.state == PROBLEM for finding in findings)
    lines.append(
        "no problem found" if not problems else f"{problems} problem(s) found: see PROBLEM above"
    )
    return "\n".join(lines)


def healthy(findings: Sequence[Finding]) -> bool:
    return all(finding.state != PROBLEM for finding in findings)


def _settings_finding(settings: Settings, operations: OperationsSettings) -> Finding:
    where = "embedded PostgreSQL" if settings.embedded_database else "CANDLE_DATABASE_URL"
    return Finding(
        "settings",
        OK,
        f"source {settings.source}, default exchange {settings.default_exchange}, "
        f"database from {where}, at most {operations.max_concurrent_runs} runs at once",
    )


def _provider_findings(settings: Settings) -> Iterator[Finding]:
    from candle_pipeline.providers.csv_files import DAILY_DIR, MINUTE_DIR  # noqa: PLC0415

    if settings.source == "csv":
        layouts = [name for name in (MINUTE_DIR, DAILY_DIR) if (settings.csv_dir / name).is_dir()]
        if not layouts:
            yield Finding(
                "provider",
                PROBLEM,
                f"CANDLE_CSV_DIR={settings.csv_dir} holds neither {MINUTE_DIR}/ nor {DAILY_DIR}/: "
                "every fetch would return no bars",
            )
            return
        yield Finding("provider", OK, f"csv: {', '.join(layouts)} in {settings.csv_dir}")
        return
    if settings.yahoo_replay_dir is not None:
        recordings = list(settings.yahoo_replay_dir.glob("*.json"))
        if not recordings:
            yield Finding(
                "provider",
                PROBLEM,
                f"CANDLE_YAHOO_REPLAY_DIR={settings.yahoo_replay_dir} holds no recorded exchanges "
                "(*.json): every request would miss",
            )
            return
        yield Finding(
            "provider",
            OK,
            f"yahoo replays {len(recordings)} recorded exchange(s) from "
            f"{settings.yahoo_replay_dir}",
        )
        return
    yield Finding(
        "provider",
        OK,
        f"yahoo over the network, {settings.yahoo_interval} bars, at most "
        f"{settings.requests_per_minute:g} requests/minute",
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _warehouse_findings(context: Context) -> Iterator[Finding]:
    from candle_pipeline.warehouse import schema  # noqa: PLC0415

    shown = context.warehouse.display_url
    name = context.settings.warehouse_schema
    try:
        found = context.warehouse.ping()
    except (psycopg.Error, sa.exc.DBAPIError) as error:
        cause = getattr(error, "orig", None) or error
        yield Finding("warehouse", PROBLEM, f"cannot connect to {shown}: {_first_line(cause)}")
        return
    head = schema.describe(found.head)
    if found.at_head:
        yield Finding("warehouse", OK, f"{shown}: schema {name} at revision {head} (head)")
        yield from _schedule_coverage_findings(context)
    elif found.unknown:
        yield Finding(
            "warehouse",
            PROBLEM,
            f"{shown}: schema {name} is at revision {schema.describe(found.unknown)}, which this "
            "release does not know: a newer release upgraded it; use that release",
        )
    elif not found.current:
        yield Finding(
            "warehouse",
            PROBLEM,
            f"{shown}: schema {name} has no revision (a new database, or one made before "
            f"migrations), head is {head}: run `candle-pipeline db upgrade`",
        )
    else:
        yield Finding(
            "warehouse",
            PROBLEM,
            f"{shown}: schema {name} is at revision {schema.describe(found.current)}, behind "
            f"{head}: run `candle-pipeline db upgrade`",
        )


def _schedule_coverage_findings(context: Context) -> Iterator[Finding]:
    """Every exchange an active watched ticker trades on has an after-close schedule."""
    from candle_pipeline.schedules import scheduled_exchanges  # noqa: PLC0415

    watched = {entry.exchange for entry in context.warehouse.watchlist(active_only=True)}
    unscheduled = sorted(watched - scheduled_exchanges(context.settings))
    if unscheduled:
        codes = ",".join(unscheduled)
        yield Finding(
            "schedules",
            PROBLEM,
            f"watched tickers trade on {codes}, which has no after-close schedule: add it to "
            f"CANDLE_EXCHANGES (e.g. CANDLE_EXCHANGES={codes}) and reload the code location",
        )
    else:
        scheduled = ", ".join(sorted(scheduled_exchanges(context.settings)))
        yield Finding("schedules", OK, f"after-close schedules for {scheduled}")


def _instance_findings(context: Context) -> Iterator[Finding]:
    yaml_file = context.dagster_home / "dagster.yaml"
    if not yaml_file.is_file():
        yield Finding(
            "dagster",
            PROBLEM,
            f"{ENV_DAGSTER_HOME}={context.dagster_home} has no dagster.yaml: copy or link the "
            "project's dagster.yaml there",
        )
        return
    defaults = local_env.instance_environment(context.dagster_url, context.dagster_home)
    with _defaults_in_environment(defaults):
        yield from _instance_storage_findings(context, yaml_file)


@contextmanager
def _defaults_in_environment(defaults: Mapping[str, str]) -> Iterator[None]:
    """The variables dagster.yaml reads, as `candle-pipeline` would export them, for a while."""
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _instance_storage_findings(context: Context, yaml_file: Path) -> Iterator[Finding]:
    try:
        instance = dg.DagsterInstance.from_config(str(context.dagster_home))
    except Exception as error:  # any failure here is the finding
        yield Finding("dagster", PROBLEM, f"the instance in {yaml_file} does not load: {error}")
        return
    with instance:
        try:
            instance.get_runs_count()
        except Exception as error:  # any failure here is the finding
            shown = mask_url(os.environ.get(ENV_DAGSTER_DATABASE_URL, context.dagster_url))
            yield Finding(
                "dagster",
                PROBLEM,
                f"the instance storage ({shown}) is unreachable: {_first_line(error)}",
            )
            return
        yield from _policy_findings(instance)
        yield from _daemon_findings(instance, context.expect_daemon)
        yield from _daemon_settings_findings(instance)
        yield from _pool_findings(instance, context.operations)


def _policy_findings(instance: dg.DagsterInstance) -> Iterator[Finding]:
    coordinator = instance.run_coordinator
    if not isinstance(coordinator, dg.QueuedRunCoordinator):
        yield Finding(
            "dagster",
            PROBLEM,
            f"runs start at once ({type(coordinator).__name__}): no run queue, so neither "
            "max_concurrent_runs nor the backfill limit apply; use the project's dagster.yaml",
        )
    else:
        limit = coordinator.get_run_queue_config().max_concurrent_runs
        yield Finding("dagster", OK, f"storage reachable; runs queue, at most {limit} at once")
    monitoring = instance.run_monitoring_settings
    if not (instance.run_monitoring_enabled and monitoring.get("free_slots_after_run_end_seconds")):
        yield Finding(
            "dagster",
            PROBLEM,
            "run monitoring does not free pool slots: a crashed run would hold its market_api "
            "slots for ever (set run_monitoring.free_slots_after_run_end_seconds)",
        )


def _daemon_waiting_work(instance: dg.DagsterInstance) -> list[str]:
    """What in the instance needs a running daemon."""
    waiting = []
    queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    if queued:
        waiting.append(f"{queued} queued run(s)")
    running = [
        state.name
        for state in instance.all_instigator_state()
        if state.status.name == INSTIGATOR_RUNNING
    ]
    if running:
        waiting.append(f"running schedule(s)/sensor(s) {', '.join(sorted(running))}")
    requested = [
        backfill
        for backfill in instance.get_backfills()
        if backfill.status.name == BACKFILL_REQUESTED
    ]
    if requested:
        waiting.append(f"{len(requested)} requested backfill(s)")
    return waiting


def _daemon_findings(instance: dg.DagsterInstance, expect_daemon: bool) -> Iterator[Finding]:
    statuses = instance.get_daemon_statuses()
    silent = sorted(
        name for name, status in statuses.items() if status.required and not status.healthy
    )
    if not silent:
        yield Finding("daemon", OK, f"all {len(statuses)} daemons sent a recent heartbeat")
        return
    waiting = _daemon_waiting_work(instance)
    if expect_daemon or waiting:
        reason = f"; waiting for it: {'; '.join(waiting)}" if waiting else ""
        yield Finding(
            "daemon",
            PROBLEM,
            f"no recent heartbeat from {', '.join(silent)}: is `dagster-daemon run` running "
            f"against this instance?{reason}",
        )
        return
    yield Finding(
        "daemon",
        NOTE,
        "no dagster-daemon is running; nothing waits for one now, but schedules, queued runs "
        "and backfills need it",
    )


def _daemon_settings_findings(instance: dg.DagsterInstance) -> Iterator[Finding]:
    """The daemon runs with the settings this command sees (its settings_sensor records them)."""
    from candle_pipeline.sensors.settings import daemon_settings  # noqa: PLC0415

    recorded = daemon_settings(instance)
    if recorded is None:
        yield Finding(
            "daemon",
            NOTE,
            "no daemon has recorded its settings yet (settings_sensor): start `make ui`",
        )
        return
    seen_at, theirs = recorded
    ours = settings_in_use()
    differing = [
        name for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)
    ]
    if not differing:
        yield Finding("daemon", OK, f"runs with the same settings (recorded {seen_at})")
        return
    shown = "; ".join(
        f"{name}: daemon {theirs.get(name, '?')}, here {ours.get(name, '?')}" for name in differing
    )
    yield Finding(
        "daemon",
        PROBLEM,
        f"the daemon runs with other settings ({shown}; recorded {seen_at}): put them in .env "
        "and restart the daemon (`make ui`), or its sensors and schedules fetch with its own",
    )


def _pool_findings(
    instance: dg.DagsterInstance, operations: OperationsSettings
) -> Iterator[Finding]:
    try:
        from candle_pipeline.definitions import defs  # noqa: PLC0415

        loaded = defs()
    except Exception as error:  # any failure here is the finding
        yield Finding("code", PROBLEM, f"the definitions do not load: {_first_line(error)}")
        return
    limits = current_limits(instance)
    wanted = wanted_limits(operations)
    users: Mapping[str, list[str]] = pools_in_use(loaded)
    for pool in sorted(set(wanted) | set(users)):
        assets = ", ".join(users.get(pool, [])) or "no asset yet"
        have = limits.get(pool)
        if have is None:
            yield Finding(
                "pools",
                PROBLEM,
                f"pool {pool} ({assets}) has no limit: its steps would all run at once; "
                "set it with `candle-pipeline pools apply`",
            )
        elif pool in wanted and have != wanted[pool]:
            yield Finding(
                "pools",
                PROBLEM,
                f"pool {pool} allows {have} at once but {LIMIT_VARIABLES[pool]} asks for "
                f"{wanted[pool]}: run `candle-pipeline pools apply`",
            )
        else:
            yield Finding("pools", OK, f"pool {pool} ({assets}): at most {have} at once")
