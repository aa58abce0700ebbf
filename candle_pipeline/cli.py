"""`candle-pipeline`: the command line of the project.

candle-pipeline db up|down|url
candle-pipeline tickers add|remove TICKER... | tickers list
candle-pipeline materialize --tickers A,B --start YYYY-MM-DD --end YYYY-MM-DD [--select ...]
candle-pipeline demo
candle-pipeline ui [--port N]
candle-pipeline doctor [--expect-daemon]
candle-pipeline pools apply
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
import psycopg
import sqlalchemy as sa
from tabulate import tabulate

from candle_pipeline import local_env
from candle_pipeline.domain.symbols import InvalidTickerError, normalize_tickers
from candle_pipeline.local_postgres import LocalPostgresError
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for, ensure_tables
from candle_pipeline.runs import ALL_ASSETS, RunOutcome, RunRequestError
from candle_pipeline.settings import (
    PROJECT_DIR,
    SAMPLE_SESSIONS,
    SP500_CONSTITUENTS,
    SettingsError,
    get_settings,
    mask_url,
    parse_date,
)
from candle_pipeline.warehouse.tables import SchemaMismatchError

if TYPE_CHECKING:
    import dagster as dg

DEFAULT_UI_PORT = 3000
EXIT_USAGE = 2
EXIT_FAILED = 1


class CliError(Exception):
    """An error to print as one line and exit with EXIT_USAGE."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (
        CliError,
        SettingsError,
        RunRequestError,
        InvalidTickerError,
        LocalPostgresError,
        LookupError,
        SchemaMismatchError,
    ) as error:
        print(f"candle-pipeline: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (sa.exc.OperationalError, psycopg.OperationalError) as error:
        cause = getattr(error, "orig", None) or error
        reason = str(cause).strip().splitlines()[0]
        print(f"candle-pipeline: error: cannot reach the database: {reason}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="candle-pipeline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the embedded PostgreSQL server")
    db.add_argument("action", choices=["up", "down", "url"])
    db.set_defaults(handler=_db)

    tickers = commands.add_parser("tickers", help="the watch list of tickers")
    tickers.add_argument("action", choices=["add", "remove", "list", "import-sp500"])
    tickers.add_argument("tickers", nargs="*", metavar="TICKER")
    tickers.add_argument("--exchange", help="MIC of the exchange, e.g. XNAS (default: inferred)")
    tickers.add_argument("--history-start", help="first day of history to backfill, YYYY-MM-DD")
    tickers.add_argument(
        "--delete-partitions",
        action="store_true",
        help="with remove: also delete the tickers' Dagster partitions (data stays)",
    )
    tickers.set_defaults(handler=_tickers)

    run = commands.add_parser("materialize", help="materialise assets for tickers x days")
    run.add_argument("--tickers", default="", help="comma-separated tickers, e.g. SPY,IBM")
    run.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    run.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    run.add_argument(
        "--select",
        default=",".join(ALL_ASSETS),
        help=f"comma-separated assets (default: all of {', '.join(ALL_ASSETS)})",
    )
    run.set_defaults(handler=_materialize)

    demo = commands.add_parser("demo", help="load the bundled sample and print a summary")
    demo.set_defaults(handler=_demo)

    ui = commands.add_parser("ui", help="the Dagster UI (dagster dev) on the same instance")
    ui.add_argument("--port", type=int, default=DEFAULT_UI_PORT)
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
    if settings.database_url is not None and args.action == "down":
        raise CliError("CANDLE_DATABASE_URL is set: there is no embedded server to stop")
    if args.action == "down":
        local_env.embedded_server(settings).stop()
        print("embedded PostgreSQL stopped")
        return 0
    if settings.database_url is not None:
        print(mask_url(settings.database_url))
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
    from candle_pipeline import tickers  # noqa: PLC0415 - loads the partitions
    from candle_pipeline.partitions import partition_space_warning  # noqa: PLC0415
    from candle_pipeline.warehouse import watchlist  # noqa: PLC0415

    settings = get_settings()
    history_start = (
        parse_date(args.history_start, "--history-start") if args.history_start else None
    )
    if args.action == "import-sp500":
        entries = watchlist.read_sp500(str(SP500_CONSTITUENTS), history_start)
    else:
        entries = [
            watchlist.NewTicker(ticker, exchange=args.exchange, history_start=history_start)
            for ticker in args.tickers
        ]
        # Validate every spelling before touching the database.
        normalize_tickers(entry.ticker for entry in entries)
    if args.action in ("add", "remove") and not entries:
        raise CliError(f"`tickers {args.action}` needs at least one ticker")
    env = local_env.prepare(settings)
    engine = _warehouse_engine(env.warehouse_url)
    with _instance() as instance:
        if args.action in ("add", "import-sp500"):
            started = time.monotonic()
            with engine.begin() as connection:
                added = watchlist.add(connection, entries, settings.default_exchange)
            print(
                f"watching {len(added)} ticker(s) ({time.monotonic() - started:.2f} s); "
                "new_tickers_sensor registers their partitions and backfills their history "
                "while the Dagster daemon runs (`make ui`)"
            )
            warning = partition_space_warning(len({*tickers.registered(instance), *added}))
            if warning:
                print(f"warning: {warning}")
        elif args.action == "remove":
            canonical = normalize_tickers(entry.ticker for entry in entries)
            deactivated, deleted = tickers.remove(
                engine, instance, canonical, args.delete_partitions
            )
            print(f"deactivated {len(deactivated)} ticker(s): {', '.join(deactivated) or '-'}")
            print(f"deleted {len(deleted)} partition(s); warehouse rows are kept")
        else:
            table = tickers.listing(engine, instance)
            if table.empty:
                print("(the watch list is empty)")
            else:
                print(tabulate(table, headers="keys", tablefmt="github", showindex=False))
    return 0


def _warehouse_engine(url: str) -> sa.Engine:
    ensure_tables(url)
    return engine_for(url)


def _materialize(args: argparse.Namespace) -> int:
    from candle_pipeline import runs  # noqa: PLC0415 - loads the partitions

    tickers = normalize_tickers(t for t in args.tickers.split(",") if t.strip())
    start = parse_date(args.start, "--start")
    end = parse_date(args.end, "--end")
    select = runs.validate_selection([n.strip() for n in args.select.split(",") if n.strip()])
    runs.validate_dates(start, end, select)
    env = local_env.prepare(get_settings())
    from candle_pipeline.definitions import defs  # noqa: PLC0415
    from candle_pipeline.tickers import register_for_run  # noqa: PLC0415

    with _instance() as instance:
        if tickers:
            register_for_run(_warehouse_engine(env.warehouse_url), instance, tickers)
        outcomes = runs.materialize(defs, instance, tickers, start, end, select=select)
    _print_outcomes(outcomes)
    return 0 if all(outcome.success for outcome in outcomes) else EXIT_FAILED


def _print_outcomes(outcomes: Sequence[RunOutcome]) -> None:
    for outcome in outcomes:
        state = "ok" if outcome.success else "FAILED"
        print(
            f"run {outcome.run_id[:8]} {state}: {', '.join(outcome.assets)} "
            f"[{outcome.first_key} .. {outcome.last_key}]"
        )
        if outcome.error:
            print(f"  {outcome.error}")


def _demo(_: argparse.Namespace) -> int:
    started = time.monotonic()
    env = local_env.prepare(get_settings())
    print(f"warehouse: {mask_url(env.warehouse_url)}")
    from candle_pipeline import runs  # noqa: PLC0415 - loads the definitions
    from candle_pipeline.definitions import defs  # noqa: PLC0415
    from candle_pipeline.tickers import register  # noqa: PLC0415
    from candle_pipeline.warehouse import summary, watchlist  # noqa: PLC0415
    from candle_pipeline.warehouse.quality_reports import latest_reports  # noqa: PLC0415

    engine = _warehouse_engine(env.warehouse_url)
    sample_tickers = [ticker for tickers, _, _ in SAMPLE_SESSIONS for ticker in tickers]
    with engine.begin() as connection:
        watchlist.add(
            connection,
            [watchlist.NewTicker(ticker, active=False) for ticker in sample_tickers],
            get_settings().default_exchange,
        )
    print("\n".join(_apply_pools()))
    outcomes: list[RunOutcome] = []
    with _instance() as instance:
        register(instance, sample_tickers)
        for tickers, start, end in SAMPLE_SESSIONS:
            outcomes.extend(runs.materialize(defs, instance, tickers, start, end))
    _print_outcomes(outcomes)

    counts = summary.partition_counts(engine)
    expected = pd.DataFrame(
        [
            (ticker, pd.Timestamp(day))
            for tickers, start, end in SAMPLE_SESSIONS
            for ticker in tickers
            for day in runs.day_range(start, end)
        ],
        columns=["ticker", "trade_date"],
    )
    counts["trade_date"] = pd.to_datetime(counts["trade_date"])
    table = expected.merge(counts, how="left", on=["ticker", "trade_date"]).fillna(0)
    with WarehouseResource(database_url=env.warehouse_url).connection() as conn:
        scores = latest_reports(
            conn, list(zip(expected["trade_date"].dt.date, expected["ticker"], strict=True))
        )
    table = table.merge(
        scores[["ticker", "trade_date", "score"]], how="left", on=["ticker", "trade_date"]
    )
    table["score"] = table["score"].map(lambda score: "" if pd.isna(score) else f"{score:.3f}")
    table["trade_date"] = table["trade_date"].dt.date
    print(
        "\nRows and quality score per partition "
        "(zero rows and no score: the market was closed that day)"
    )
    print(
        tabulate(
            table,
            headers="keys",
            tablefmt="github",
            showindex=False,
            intfmt=",",
            disable_numparse=[table.columns.get_loc("score")],
        )
    )
    print("\nRows per table")
    print(
        tabulate(
            summary.table_totals(engine).items(),
            headers=["table", "rows"],
            tablefmt="github",
            intfmt=",",
        )
    )
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
    os.execv(dagster, [dagster, "dev", "-w", str(workspace), "-p", str(args.port)])
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
