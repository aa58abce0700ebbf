"""`candle-pipeline`: the command line of the project.

candle-pipeline db up|down|url|upgrade
candle-pipeline tickers add|remove TICKER... [--provider P] [--intraday]
candle-pipeline tickers list | tickers import-sp500
candle-pipeline materialize --start YYYY-MM-DD --end YYYY-MM-DD [--tickers A,B] [--refetch]
candle-pipeline crosscheck --tickers A,B --start YYYY-MM-DD --end YYYY-MM-DD [--against SOURCE]
candle-pipeline coverage [--ticker T] [--start YYYY-MM-DD] [--end YYYY-MM-DD]
candle-pipeline calendar close|late-open|early-close|list|remove [MIC] [DATE] [--at HH:MM] ...
candle-pipeline demo
candle-pipeline ui [--host H] [--port N]
candle-pipeline doctor [--expect-daemon]
candle-pipeline pools apply

Every command reads its settings from the environment and from `.env` in the folder it starts in
(as `dagster dev`, the webserver and the daemon do); a variable already set wins.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import psycopg
import rich.console
import rich.progress
import sqlalchemy as sa
from tabulate import tabulate

from candle_pipeline import local_env
from candle_pipeline.domain.calendar_overrides import OverrideError
from candle_pipeline.domain.exchanges import UnknownExchangeError
from candle_pipeline.domain.routing import KNOWN_SOURCES
from candle_pipeline.domain.symbols import InvalidTickerError, normalize_tickers
from candle_pipeline.local_postgres import LocalPostgresError
from candle_pipeline.settings import (
    ENV_DAGSTER_UI_URL,
    PROJECT_DIR,
    SP500_CONSTITUENTS,
    SettingsError,
    get_quality_settings,
    get_settings,
    mask_url,
    parse_date,
    validate_settings,
)
from candle_pipeline.warehouse import schema

if TYPE_CHECKING:
    from candle_pipeline.resources.warehouse import WarehouseResource
    from candle_pipeline.runs import RunOutcome
    from candle_pipeline.warehouse.watchlist import NewTicker, WatchedTicker

DEFAULT_UI_PORT = 3000
DEFAULT_UI_HOST = "127.0.0.1"
EXIT_USAGE = 2
EXIT_FAILED = 1
# The sample ticker whose split the demo shows raw and adjusted.
DEMO_SPLIT_TICKER = "AAPL"
# The bundled sample: (tickers, first day, last day) groups that `demo` loads.
SAMPLE_SESSIONS = (
    (("SPY", "AIG", "BAC", "IBM"), date(2013, 10, 4), date(2013, 10, 11)),
    (("AAPL",), date(2014, 6, 5), date(2014, 6, 9)),
    (("GOOG",), date(2015, 12, 23), date(2015, 12, 28)),
)


class CliError(Exception):
    """An error to print as one line and exit with EXIT_USAGE."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    local_env.load_env_file()
    try:
        # Every setting, before anything reads one: a mistake is one line whatever the command.
        validate_settings()
        from candle_pipeline.runs import (  # noqa: PLC0415 - reads the settings
            RunQueueError,
            RunRequestError,
        )

        user_errors: tuple[type[Exception], ...] = (
            CliError,
            SettingsError,
            RunRequestError,
            InvalidTickerError,
            UnknownExchangeError,
            OverrideError,
            LocalPostgresError,
            LookupError,
            schema.SchemaUpgradeError,
        )
        try:
            return args.handler(args)
        except user_errors as error:
            _explain(args, error, str(error))
            return EXIT_USAGE
        except RunQueueError as error:
            _explain(args, error, str(error))
            return EXIT_FAILED
    except SettingsError as error:
        _explain(args, error, str(error))
        return EXIT_USAGE
    except (sa.exc.OperationalError, psycopg.OperationalError) as error:
        cause = getattr(error, "orig", None) or error
        reason = str(cause).strip().splitlines()[0]
        _explain(args, error, f"cannot reach the database: {reason}")
        return EXIT_FAILED


def _explain(args: argparse.Namespace, error: Exception, message: str) -> None:
    """One line on stderr; the traceback too with --verbose."""
    if args.verbose:
        traceback.print_exception(error)
    print(f"candle-pipeline: error: {message}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="candle-pipeline", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--verbose", action="store_true", help="print the traceback behind an error message"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser(
        "db", help="the embedded PostgreSQL server; `upgrade` migrates the warehouse schema"
    )
    db.add_argument("action", choices=["up", "down", "url", "upgrade"])
    db.add_argument(
        "--show-password",
        action="store_true",
        help="`url`: print the password of an external database too (masked by default)",
    )
    db.set_defaults(handler=_db)

    tickers = commands.add_parser("tickers", help="the watch list of tickers")
    tickers.add_argument("action", choices=["add", "remove", "list", "import-sp500"])
    tickers.add_argument("tickers", nargs="*", metavar="TICKER")
    tickers.add_argument("--exchange", help="MIC of the exchange, e.g. XNAS (default: inferred)")
    tickers.add_argument(
        "--history-start",
        help="first day the ticker counts (its history to fetch), YYYY-MM-DD "
        "(default: CANDLE_BACKFILL_LOOKBACK_DAYS before today; an earlier one extends it)",
    )
    tickers.add_argument(
        "--provider",
        choices=KNOWN_SOURCES,
        help="the market-data source to fetch them from (default: a crypto pair such as "
        "BTC/USDT from ccxt, anything else from CANDLE_SOURCE)",
    )
    tickers.add_argument(
        "--intraday",
        action="store_true",
        help="refresh them every few minutes while their market is open (the intraday schedule)",
    )
    tickers.set_defaults(handler=_tickers)

    run = commands.add_parser("materialize", help="complete the day partitions of a range of days")
    run.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    run.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    run.add_argument(
        "--tickers", default="", help="only these watched tickers, comma-separated (default: all)"
    )
    run.add_argument(
        "--refetch",
        action="store_true",
        help="ask the provider again for complete ticker-days too, and replace them",
    )
    run.add_argument(
        "--select",
        help="comma-separated assets (default: all of market_timings, raw_quotes, "
        "validated_quotes, candles)",
    )
    run.set_defaults(handler=_materialize)

    cross = commands.add_parser(
        "crosscheck", help="compare the stored daily closes of tickers with a second source"
    )
    cross.add_argument("--tickers", required=True, help="watched tickers, comma-separated")
    cross.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    cross.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    cross.add_argument(
        "--against",
        choices=KNOWN_SOURCES,
        help="the source to compare with (default: per ticker, the first source of its chain "
        "other than the one that served the stored days)",
    )
    cross.set_defaults(handler=_crosscheck)

    coverage = commands.add_parser(
        "coverage", help="which ticker-days are complete, missing, failed or blocked"
    )
    coverage.add_argument(
        "--ticker", default="", help="one ticker (a line per month) or several, comma-separated"
    )
    coverage.add_argument("--start", help="first day, YYYY-MM-DD (default: the first partition)")
    coverage.add_argument("--end", help="last day, YYYY-MM-DD (default: today)")
    coverage.set_defaults(handler=_coverage)

    _add_calendar_command(commands)

    demo = commands.add_parser("demo", help="load the bundled sample and print a summary")
    demo.set_defaults(handler=_demo)

    ui = commands.add_parser("ui", help="the Dagster UI (dagster dev) on the same instance")
    ui.add_argument("--port", type=int, default=DEFAULT_UI_PORT)
    ui.add_argument(
        "--host",
        default=DEFAULT_UI_HOST,
        help=f"address to listen on (default {DEFAULT_UI_HOST}; 0.0.0.0 for every interface)",
    )
    ui.set_defaults(handler=_ui)

    _add_operations_commands(commands)
    return parser


def _db(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "up":
        env = local_env.prepare(settings)
        print(f"warehouse: {mask_url(env.warehouse_url)}")
        print(f"dagster instance: {mask_url(env.dagster_url)}")
        return 0
    if args.action == "upgrade":
        done = schema.upgrade(local_env.prepare(settings).warehouse_url)
        before = schema.describe(done.before)
        if done.stamped:
            before += f" (made before migrations: stamped {schema.FIRST_RELEASE})"
        elif not done.before:
            before += " (a new warehouse)"
        print(f"schema revision before: {before}")
        print(f"schema revision after:  {schema.describe(done.after)} (head)")
        return 0
    if settings.database_url is not None and args.action == "down":
        raise CliError("CANDLE_DATABASE_URL is set: there is no embedded server to stop")
    if args.action == "down":
        server = local_env.embedded_server(settings)
        if not server.is_running():
            print("embedded PostgreSQL is not running: nothing to stop")
            return 0
        server.stop()
        print("embedded PostgreSQL stopped")
        return 0
    if settings.database_url is not None:
        print(settings.database_url if args.show_password else mask_url(settings.database_url))
    else:
        server = local_env.embedded_server(settings)
        if not server.is_running():
            raise CliError("the embedded PostgreSQL is not running; start it with `db up`")
        print(server.url("candle"))
    return 0


def _instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME, which `local_env.prepare` has exported."""
    return dg.DagsterInstance.get()


def _tickers(args: argparse.Namespace) -> int:
    from candle_pipeline.partitions import today  # noqa: PLC0415 - loads Dagster
    from candle_pipeline.warehouse import watchlist  # noqa: PLC0415

    settings = get_settings()
    history_start = (
        parse_date(args.history_start, "--history-start") if args.history_start else None
    )
    if args.action == "import-sp500":
        entries = watchlist.read_sp500(str(SP500_CONSTITUENTS), history_start)
    else:
        entries = [
            watchlist.NewTicker(
                ticker,
                exchange=args.exchange,
                history_start=history_start,
                provider=args.provider,
                intraday=args.intraday,
            )
            for ticker in args.tickers
        ]
        # Validate every spelling before touching the database.
        normalize_tickers(entry.ticker for entry in entries)
    if args.action in ("add", "remove") and not entries:
        raise CliError(f"`tickers {args.action}` needs at least one ticker")
    env = local_env.prepare(settings)
    warehouse = _warehouse(env.warehouse_url)
    current_day = today()
    lookback = timedelta(days=settings.backfill_lookback_days)
    if args.action in ("add", "import-sp500"):
        _add_tickers(args, warehouse, entries, history_start or current_day - lookback)
    elif args.action == "remove":
        canonical = normalize_tickers(entry.ticker for entry in entries)
        removed = warehouse.remove_tickers(canonical, current_day)
        not_watched = sorted(set(canonical) - set(removed))
        print(
            f"removed {len(removed)} ticker(s) from {current_day} on: "
            f"{', '.join(removed) or '-'}; their earlier days and stored rows stay"
        )
        if not_watched:
            print(f"not being watched, nothing changed: {', '.join(not_watched)}")
        if removed:
            from candle_pipeline.runs import cancel_waiting_runs  # noqa: PLC0415

            with _instance() as instance:
                cancelled = cancel_waiting_runs(instance, removed)
            if cancelled:
                print(f"cancelled {len(cancelled)} queued run(s) that fetched only them")
    else:
        table = watchlist.listing(warehouse.watchlist())
        if table.empty:
            print("(the watch list is empty)")
        else:
            print(tabulate(table, headers="keys", tablefmt="github", showindex=False))
    return 0


def _add_tickers(
    args: argparse.Namespace,
    warehouse: WarehouseResource,
    entries: Sequence[NewTicker],
    default_start: date,
) -> None:
    """`tickers add` and `tickers import-sp500`: one transaction, then what happens next."""
    from candle_pipeline.schedules import scheduled_exchanges  # noqa: PLC0415

    settings = get_settings()
    started = time.monotonic()
    # Refused, and nothing kept, when the intraday refreshes could not keep up.
    added, watched = warehouse.add_tickers(
        entries,
        default_start,
        accept=_check_intraday_budget if args.action == "add" and args.intraday else None,
    )
    exchanges = {entry.exchange for entry in watched if entry.ticker in added}
    print(
        f"watching {len(added)} ticker(s) ({time.monotonic() - started:.2f} s); while the "
        "Dagster daemon runs (`make ui`), new_tickers_sensor fetches their history, from "
        f"their history start ({default_start} unless given before) to yesterday"
    )
    if unscheduled := ",".join(sorted(exchanges - scheduled_exchanges(settings))):
        print(
            f"note: {unscheduled} has no after-close schedule, so their new sessions are "
            f"not fetched each day: set CANDLE_EXCHANGES={unscheduled} in .env and restart "
            "the Dagster processes (`make ui`)"
        )


def _check_intraday_budget(entries: Sequence[WatchedTicker]) -> None:
    """A CliError when the active intraday tickers of `entries` need more requests per refresh
    than the provider's rate limit allows between two refreshes."""
    from candle_pipeline.domain.intraday import BudgetError, RequestBudget  # noqa: PLC0415
    from candle_pipeline.settings import get_operations_settings  # noqa: PLC0415

    operations = get_operations_settings()
    refreshed = [
        entry for entry in entries if entry.active and (entry.intraday or operations.intraday_all)
    ]
    budget = RequestBudget(
        tickers=len(refreshed),
        exchanges=len({entry.exchange for entry in refreshed}),
        every_minutes=operations.intraday_minutes,
        requests_per_minute=get_settings().requests_per_minute,
    )
    try:
        budget.check()
    except BudgetError as error:
        raise CliError(f"not marked for intraday: {error}") from None


def _warehouse(url: str) -> WarehouseResource:
    """The warehouse resource of the settings, its schema brought to the current revision."""
    from candle_pipeline.resources.catalog import build_warehouse  # noqa: PLC0415
    from candle_pipeline.resources.warehouse import ensure_tables  # noqa: PLC0415

    ensure_tables(url)
    return build_warehouse(get_settings(), url)


def _materialize(args: argparse.Namespace) -> int:
    from candle_pipeline import runs  # noqa: PLC0415 - loads the partitions

    tickers = normalize_tickers(t for t in args.tickers.split(",") if t.strip())
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    request = runs.WorkRequest.between(
        start,
        end,
        assets=runs.ALL_ASSETS
        if args.select is None
        else [name.strip() for name in args.select.split(",") if name.strip()],
        tickers=tickers,
        refetch=args.refetch,
    )
    env = local_env.prepare(get_settings())
    warehouse = _warehouse(env.warehouse_url)
    from candle_pipeline.partitions import today  # noqa: PLC0415

    entries = warehouse.watchlist()
    if unknown := sorted(set(tickers) - {entry.ticker for entry in entries}):
        raise CliError(
            f"ticker(s) {', '.join(unknown)} are not on the watch list: add them with "
            "`candle-pipeline tickers add`"
        )
    if end >= today() and request.fetches_market_data:
        in_scope = [e for e in entries if e.ticker in tickers or (not tickers and e.active)]
        _refuse_sessions_in_progress(warehouse, {entry.exchange for entry in in_scope}, end)
    from candle_pipeline.definitions import defs  # noqa: PLC0415

    with _instance() as instance:
        if runs.queue_worked(instance):
            ui_url = get_quality_settings().dagster_ui_url
            launch_run: runs.Launcher = runs.RunQueue(instance, ui_url)
            print(f"a Dagster daemon works the run queue: runs queued through {ui_url}")
        else:
            launch_run = runs.in_process(defs(), instance)
        with _Progress(start, end) as progress:
            outcomes = runs.launch(request, launch_run, progress.run_ended)
    return 0 if all(outcome.success for outcome in outcomes) else EXIT_FAILED


def _refuse_sessions_in_progress(warehouse: WarehouseResource, mics: set[str], day: date) -> None:
    """A CliError when a session of `day` is still running on one of `mics`."""
    from candle_pipeline.domain.sessions import sessions_in_progress  # noqa: PLC0415

    overrides = warehouse.calendar_overrides_frame(mics, day, day)
    running = sessions_in_progress(mics, day, datetime.now(UTC), overrides)
    if running:
        last_close = max(running.values())
        exchanges = ", ".join(
            f"{mic} closes {close:%Y-%m-%d %H:%M} UTC" for mic, close in sorted(running.items())
        )
        raise CliError(
            f"the session of {day} is still in progress ({exchanges}): materialise {day} "
            f"after {last_close:%Y-%m-%d %H:%M} UTC, or end the range on {day - timedelta(days=1)}"
        )


class _Progress:
    """Days done, rate and time left on stderr while runs go (when stderr is a terminal); each
    run's outcome on stdout as it ends."""

    def __init__(self, start: date, end: date) -> None:
        self._bar = rich.progress.Progress(
            rich.progress.TextColumn("{task.description}"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TextColumn("days"),
            rich.progress.TimeElapsedColumn(),
            rich.progress.TextColumn("left"),
            rich.progress.TimeRemainingColumn(),
            console=rich.console.Console(stderr=True),
            disable=not sys.stderr.isatty(),
        )
        self._task = self._bar.add_task("materialising", total=(end - start).days + 1)

    def __enter__(self) -> _Progress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def run_ended(self, outcome: RunOutcome) -> None:
        self._bar.advance(self._task, (outcome.last_day - outcome.first_day).days + 1)
        _print_outcomes([outcome])
        sys.stdout.flush()


def _print_outcomes(outcomes: Sequence[RunOutcome]) -> None:
    for outcome in outcomes:
        state = "ok" if outcome.success else "FAILED"
        print(
            f"run {outcome.run_id[:8]} {state}: {', '.join(outcome.assets)} "
            f"[{outcome.first_day} .. {outcome.last_day}]"
        )
        if outcome.error:
            print(f"  {outcome.error}")
            ui = get_quality_settings().dagster_ui_url
            print(f"  its events and logs: {ui}/runs/{outcome.run_id} (`candle-pipeline ui`)")


def _crosscheck(args: argparse.Namespace) -> int:
    from candle_pipeline import runs  # noqa: PLC0415 - loads the partitions
    from candle_pipeline.checks.crosscheck import (  # noqa: PLC0415 - loads Dagster
        MISMATCHES_KEY,
        NOT_COMPARED_KEY,
    )

    tickers = normalize_tickers(t for t in args.tickers.split(",") if t.strip())
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    runs.validate_dates(start, end)
    if not tickers:
        raise CliError("name the tickers to cross-check: --tickers A,B")
    env = local_env.prepare(get_settings())
    watched = {entry.ticker for entry in _warehouse(env.warehouse_url).watchlist()}
    if unknown := sorted(set(tickers) - watched):
        raise CliError(
            f"ticker(s) {', '.join(unknown)} are not on the watch list: add them with "
            "`candle-pipeline tickers add`"
        )
    from candle_pipeline.definitions import defs  # noqa: PLC0415

    with _instance() as instance:
        outcome = runs.crosscheck(defs(), instance, tickers, start, end, against=args.against)
    if not outcome.success:
        print(f"run {outcome.run_id[:8]} FAILED: crosscheck [{start} .. {end}]")
        print(f"  {outcome.error}")
        return EXIT_FAILED
    compared = mismatched = 0
    not_compared: list[str] = []
    for evaluation in outcome.evaluations:
        metadata = {key: value.value for key, value in evaluation.metadata.items()}
        compared += int(metadata["compared_ticker_days"])
        mismatched += int(metadata["mismatched_ticker_days"])
        if MISMATCHES_KEY in metadata:
            for line in str(metadata[MISMATCHES_KEY]).splitlines():
                print(f"mismatch: {line}")
        if NOT_COMPARED_KEY in metadata:
            not_compared += [
                f"{evaluation.partition} {line}"
                for line in str(metadata[NOT_COMPARED_KEY]).splitlines()
            ]
    for line in not_compared:
        print(f"not compared: {line}")
    tolerance = get_quality_settings().crosscheck_tolerance
    print(
        f"run {outcome.run_id[:8]} ok: {compared} ticker-day(s) compared, {mismatched} more than "
        f"{tolerance:.2%} apart (source_mismatch), {len(not_compared)} not compared "
        f"[{start} .. {end}]"
    )
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from candle_pipeline import coverage, runs  # noqa: PLC0415 - loads Dagster
    from candle_pipeline.partitions import today  # noqa: PLC0415

    tickers = normalize_tickers(t for t in args.ticker.split(",") if t.strip())
    end = parse_date(args.end, "--end") if args.end else today()
    start = parse_date(args.start, "--start") if args.start else get_settings().partition_start
    # Days of the partitions only: no session after today is due yet.
    runs.validate_dates(start, end)
    env = local_env.prepare(get_settings())
    print(coverage.report(_warehouse(env.warehouse_url), tickers or None, start, end))
    return 0


CALENDAR_KINDS = {"close": "closed", "late-open": "late_open", "early-close": "early_close"}


def _add_calendar_command(commands: argparse._SubParsersAction) -> None:
    calendar = commands.add_parser(
        "calendar", help="corrections of exchange calendars: closures, late opens, early closes"
    )
    calendar.add_argument("action", choices=[*CALENDAR_KINDS, "list", "remove"])
    calendar.add_argument("mic", nargs="?", metavar="MIC", help="the exchange, e.g. XNYS")
    calendar.add_argument("date", nargs="?", metavar="DATE", help="the day, YYYY-MM-DD")
    calendar.add_argument("--at", help="local time of a late open or early close, HH:MM")
    calendar.add_argument("--reason", help="why (required to close a day)")
    calendar.add_argument("--source", help="the exchange's notice, a URL")
    calendar.set_defaults(handler=_calendar)


def _calendar(args: argparse.Namespace) -> int:
    from candle_pipeline.domain import calendar_overrides as overrides  # noqa: PLC0415
    from candle_pipeline.domain.exchanges import validate_mic  # noqa: PLC0415
    from candle_pipeline.partitions import today  # noqa: PLC0415 - loads Dagster

    settings = get_settings()
    mic = validate_mic(args.mic) if args.mic else None
    if args.action == "list":
        listed = _warehouse(local_env.prepare(settings).warehouse_url).calendar_override_listing(
            mic
        )
        if listed.empty:
            print("(no calendar correction in force)")
        else:
            print(tabulate(listed.fillna(""), headers="keys", tablefmt="github", showindex=False))
        return 0
    if mic is None or not args.date:
        raise CliError(f"`calendar {args.action}` needs an exchange (MIC) and a date")
    day = parse_date(args.date, "DATE")
    overrides.check_day(day, settings.partition_start, today())
    by, now = _user(), datetime.now(UTC)
    if args.action == "remove":
        warehouse = _warehouse(local_env.prepare(settings).warehouse_url)
        removed = warehouse.remove_calendar_overrides(mic, day, by, now)
        if not removed:
            raise CliError(f"{mic} has no calendar correction on {day.isoformat()}")
        print(f"removed {len(removed)} correction(s) of {mic} on {day.isoformat()}; {AFTERWARDS}")
        return 0
    kind = CALENDAR_KINDS[args.action]
    if kind == overrides.CLOSED and args.at:
        raise CliError("`calendar close` takes no --at: the whole day is closed")
    at = overrides.parse_clock(args.at) if args.at else None
    override = overrides.CalendarOverride(mic, day, kind, at, args.reason, args.source)
    _warehouse(local_env.prepare(settings).warehouse_url).record_calendar_override(
        override, by, now
    )
    print(f"recorded {override.describe()}; {AFTERWARDS}")
    return 0


AFTERWARDS = (
    "while the Dagster daemon runs, calendar_overrides_sensor materialises that day's "
    "market_timings again and re-evaluates its ticker-days"
)


def _user() -> str:
    """Who records a correction: the operating-system user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _demo(_: argparse.Namespace) -> int:
    started = time.monotonic()
    env = local_env.prepare(get_settings())
    print(f"warehouse: {mask_url(env.warehouse_url)}")
    from candle_pipeline import coverage, read, runs  # noqa: PLC0415 - loads the definitions
    from candle_pipeline.definitions import defs  # noqa: PLC0415
    from candle_pipeline.partitions import days_between  # noqa: PLC0415
    from candle_pipeline.warehouse import watchlist  # noqa: PLC0415

    warehouse = _warehouse(env.warehouse_url)
    first_day = min(start for _, start, _ in SAMPLE_SESSIONS)
    last_day = max(end for _, _, end in SAMPLE_SESSIONS)
    sample_tickers = sorted({ticker for tickers, _, _ in SAMPLE_SESSIONS for ticker in tickers})
    warehouse.add_tickers(
        [
            watchlist.NewTicker(ticker, active=False, removed_on=last_day + timedelta(days=1))
            for ticker in sample_tickers
        ],
        first_day,
    )
    print("\n".join(_apply_pools()))
    outcomes: list[RunOutcome] = []
    with _instance() as instance:
        for _, start, end in SAMPLE_SESSIONS:
            with _Progress(start, end) as progress:
                outcomes.extend(
                    runs.materialize(defs(), instance, start, end, on_run_end=progress.run_ended)
                )
    print("\nTicker-days of the sample days (every sample ticker is watched on each of them)")
    days = [day for _, start, end in SAMPLE_SESSIONS for day in days_between(start, end)]
    print(coverage.day_table(warehouse, days))
    print("\nRows per table")
    print(
        tabulate(
            warehouse.table_totals().items(),
            headers=["table", "rows"],
            tablefmt="github",
            intfmt=",",
        )
    )
    split = next(session for session in SAMPLE_SESSIONS if DEMO_SPLIT_TICKER in session[0])
    print(f"\n{DEMO_SPLIT_TICKER} across its 7:1 split of 2014-06-09, raw and adjusted today")
    table = read.side_by_side(DEMO_SPLIT_TICKER, split[1], split[2], database_url=env.warehouse_url)
    print(tabulate(table, headers="keys", tablefmt="github", showindex=False, intfmt=","))
    print(
        f"\ndemo finished in {time.monotonic() - started:.1f} s; "
        "see it in the Dagster UI with `make ui`"
    )
    return 0 if all(outcome.success for outcome in outcomes) else EXIT_FAILED


def _ui(args: argparse.Namespace) -> int:
    local_env.prepare(get_settings())
    print("\n".join(_apply_pools()))
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or shutil.which(
        "dagster"
    )
    if dagster is None:
        raise CliError("the `dagster` command was not found; install the project first")
    workspace = PROJECT_DIR / "workspace.yaml"
    # Alerts link to the runs of this UI unless CANDLE_DAGSTER_UI_URL names another address.
    link_host = "localhost" if args.host in (DEFAULT_UI_HOST, "0.0.0.0") else args.host
    os.environ.setdefault(ENV_DAGSTER_UI_URL, f"http://{link_host}:{args.port}")
    os.execv(
        dagster,
        [dagster, "dev", "-w", str(workspace), "-h", args.host, "-p", str(args.port)],
    )
    return 0


# --- operations: health and pools ------------------------------------------------------------


def _add_operations_commands(commands: argparse._SubParsersAction) -> None:
    doctor = commands.add_parser(
        "doctor", help="check the database, the Dagster instance, the provider and the pools"
    )
    doctor.add_argument(
        "--expect-daemon",
        action="store_true",
        help="a missing dagster-daemon is a problem even when nothing waits for it",
    )
    doctor.set_defaults(handler=_doctor)

    pools = commands.add_parser("pools", help="concurrency pools of the Dagster instance")
    pools.add_argument("action", choices=["apply"], help="set every pool's limit from settings")
    pools.set_defaults(handler=_pools)


def _doctor(args: argparse.Namespace) -> int:
    from candle_pipeline import doctor  # noqa: PLC0415 - loads Dagster

    findings = doctor.diagnose(expect_daemon=args.expect_daemon)
    print(doctor.report(findings))
    return 0 if doctor.healthy(findings) else EXIT_FAILED


def _pools(_: argparse.Namespace) -> int:
    local_env.prepare(get_settings())
    print("\n".join(_apply_pools()))
    return 0


def _apply_pools() -> list[str]:
    """Set the pool limits of the instance from the settings; one line per pool."""
    from candle_pipeline.pools import apply_pool_limits, wanted_limits  # noqa: PLC0415
    from candle_pipeline.settings import get_operations_settings  # noqa: PLC0415

    operations = get_operations_settings()
    with _instance() as instance:
        changes = apply_pool_limits(instance, operations)
    lines = []
    for pool, limit in wanted_limits(operations).items():
        was = "unchanged"
        if pool in changes:
            before = changes[pool][0]
            was = f"was {'unlimited' if before is None else before}"
        lines.append(f"pool {pool}: at most {limit} at once ({was})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
