"""The warehouse schema's migrations against a real PostgreSQL server: a new warehouse, one made
by the previous release (a dump of it, fixtures/previous_release_warehouse.sql), concurrency,
the `db upgrade` command and the doctor's finding."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from candle_pipeline.cli import EXIT_FAILED, EXIT_USAGE, main
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import PROJECT_DIR, get_operations_settings, get_settings
from candle_pipeline.warehouse import schema
from candle_pipeline.warehouse.tables import metadata
from candle_pipeline_tests.conftest import FIXTURES_DIR, create_database

pytestmark = pytest.mark.integration

PREVIOUS_RELEASE_DUMP = FIXTURES_DIR / "previous_release_warehouse.sql"
HEAD = schema.head_revisions()
UNFINISHED = "stored without candles before day partitions: materialise the day again"
BLOCKED_VERDICT = "quality score 0.0000 < threshold 0.8"
TIMEOUT_SECONDS = 300


def load_previous_release(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(PREVIOUS_RELEASE_DUMP.read_text())


@pytest.fixture
def previous_release_url(pg_server: LocalPostgres) -> str:
    """A warehouse the previous release made and filled, never upgraded."""
    url = create_database(pg_server, "previous")
    load_previous_release(url)
    return url


def schema_differences(url: str) -> list[tuple]:
    """What Alembic's autogenerate finds between the database and tables.py's metadata."""
    name = get_settings().warehouse_schema

    def in_warehouse(object_name: str | None, kind: str, _: object) -> bool:
        return kind != "schema" or object_name == name

    with engine_for(url).connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": in_warehouse,
                "version_table_schema": name,
                "compare_type": True,
            },
        )
        return compare_metadata(context, metadata)


def table_counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM market.{table}")).scalar_one()
            for table in schema.PREVIOUS_RELEASE_TABLES
        }


def rows(url: str, query: str) -> list[tuple]:
    with engine_for(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query))]


def state(
    status: str,
    *,
    attempts: int = 1,
    error: str | None = None,
    score: float | None = 1.0,
    rows: int = 1,
    spikes: int = 0,
    by_migration: bool = False,
) -> tuple:
    """exchange, status, attempts, last_error, quality_score, rows, spike_rows and whether the
    run id is the migration's, as the test of a previous release's warehouse selects them."""
    return ("XNYS", status, attempts, error, score, rows, spikes, by_migration)


def test_a_new_warehouse_gets_exactly_the_tables_of_tables_py(warehouse_url: str) -> None:
    done = schema.upgrade(warehouse_url)
    assert done == schema.Upgrade(before=(), after=HEAD)
    assert schema_differences(warehouse_url) == []
    assert rows(warehouse_url, "SELECT count(*) FROM market.ticker_day_coverage") == [(0,)]

    # The comparison sees the warehouse schema: a missing index is a difference.
    with engine_for(warehouse_url).begin() as conn:
        conn.execute(sa.text("DROP INDEX market.ticker_days_due"))
    [(kind, index)] = schema_differences(warehouse_url)
    assert (kind, index.name) == ("add_index", "ticker_days_due")


def test_the_schema_name_comes_from_the_settings(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDLE_WAREHOUSE_SCHEMA", "prices")
    get_settings.cache_clear()
    try:
        schema.upgrade(warehouse_url)
    finally:
        get_settings.cache_clear()
    found = rows(
        warehouse_url,
        "SELECT table_schema, count(*) FROM information_schema.tables "
        "WHERE table_schema IN ('market', 'prices') GROUP BY table_schema",
    )
    # The tables, the two views and the version table.
    assert found == [("prices", len(metadata.tables) + 3)]
    assert rows(warehouse_url, "SELECT version_num FROM prices.alembic_version") == [HEAD]


def test_downgrading_to_the_first_release_and_back(warehouse_url: str) -> None:
    schema.upgrade(warehouse_url)
    with engine_for(warehouse_url).begin() as conn:
        command.downgrade(schema.alembic_config(conn), schema.FIRST_RELEASE)
    tables = rows(
        warehouse_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'market' "
        "AND table_name <> 'alembic_version' ORDER BY 1",
    )
    assert [name for (name,) in tables] == sorted(schema.PREVIOUS_RELEASE_TABLES)
    done = schema.upgrade(warehouse_url)
    assert done == schema.Upgrade(before=(schema.FIRST_RELEASE,), after=HEAD)
    assert schema_differences(warehouse_url) == []


def test_yahoo_rows_stored_before_raw_prices_are_marked_for_refetch(warehouse_url: str) -> None:
    schema.upgrade(warehouse_url)
    with engine_for(warehouse_url).begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0002_day_partitions")
        conn.exec_driver_sql(
            "INSERT INTO market.ticker_days (ticker, trade_date, exchange, status, attempts, rows,"
            " spike_rows, stale_rows, gaps, source, fetched_at, updated_at, run_id) VALUES"
            " ('NVDA', '2021-07-19', 'XNAS', 'complete', 1, 1, 0, 0, 0, 'yahoo', now(), now(),"
            " 'a'), ('SPY', '2013-10-07', 'XNYS', 'complete', 1, 3, 0, 0, 0, 'csv', now(), now(),"
            " 'b')"
        )
        conn.exec_driver_sql(
            "INSERT INTO market.corporate_actions (ticker, ex_date, split_ratio, source,"
            " fetched_at) VALUES ('NVDA', '2021-07-20', 4, 'yahoo', '2021-07-21T00:00Z')"
        )
    schema.upgrade(warehouse_url)
    assert rows(warehouse_url, "SELECT ticker, status FROM market.ticker_days ORDER BY 1") == [
        ("NVDA", "failed"),
        ("SPY", "complete"),
    ]
    [(error,)] = rows(
        warehouse_url, "SELECT last_error FROM market.ticker_days WHERE ticker = 'NVDA'"
    )
    assert "materialise the day again" in error
    [(seen, fetched)] = rows(
        warehouse_url, "SELECT first_seen, fetched_at FROM market.corporate_actions"
    )
    assert seen == fetched, "an action already stored was first seen when it was fetched"


def test_a_previous_release_warehouse_is_upgraded_in_place(previous_release_url: str) -> None:
    url = previous_release_url
    # A ticker-day with candles and no quality report (hand-made: every run of that release
    # wrote both).
    with engine_for(url).begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM market.quality_reports "
                "WHERE ticker = 'SPY' AND trade_date = '2013-09-09'"
            )
        )
    before = table_counts(url)
    [(failing_run,)] = rows(url, "SELECT run_id FROM market.quality_reports WHERE NOT passed")

    done = schema.upgrade(url)

    assert done == schema.Upgrade(before=(), after=HEAD, stamped=True)
    assert table_counts(url) == before, "every stored row is kept"
    assert schema_differences(url) == []

    states = rows(
        url,
        "SELECT ticker, trade_date, exchange, status, attempts, last_error, quality_score, rows, "
        "spike_rows, run_id = 'migration' FROM market.ticker_days ORDER BY ticker, trade_date",
    )
    closed = state("closed", attempts=0, score=None, rows=0)
    assert states == [
        ("GOOG", date(2015, 12, 24), *state("complete", rows=227)),
        ("GOOG", date(2015, 12, 25), *closed),
        ("IBM", date(2013, 9, 6), *state("complete")),
        ("IBM", date(2013, 9, 7), *closed),
        ("IBM", date(2013, 9, 8), *closed),
        ("IBM", date(2013, 9, 9), *state("complete")),
        ("IBM", date(2013, 9, 10), *state("blocked", error=BLOCKED_VERDICT, score=0.0, spikes=1)),
        ("SPY", date(2013, 9, 6), *state("complete")),
        ("SPY", date(2013, 9, 7), *closed),
        ("SPY", date(2013, 9, 8), *closed),
        ("SPY", date(2013, 9, 9), *state("complete", score=None, by_migration=True)),
        ("SPY", date(2013, 9, 10), *state("complete")),
        ("SPY", date(2013, 9, 11), *state("failed", error=UNFINISHED)),
    ]
    assert rows(
        url,
        "SELECT run_id FROM market.ticker_days WHERE ticker = 'IBM' AND trade_date = '2013-09-10'",
    ) == [(failing_run,)]
    # Source and fetch time are those of the latest raw rows of each stored ticker-day.
    assert rows(
        url,
        "SELECT count(*) FROM market.ticker_days AS d JOIN (SELECT ticker, trade_date, "
        "max(fetched_at) AS fetched_at, count(*) AS rows FROM market.raw_quotes "
        "GROUP BY ticker, trade_date) AS r USING (ticker, trade_date) "
        "WHERE d.fetched_at = r.fetched_at AND d.rows = r.rows AND d.source = 'csv'",
    ) == [(8,)]

    watch = rows(
        url,
        "SELECT ticker, history_start, removed_on, (added_at AT TIME ZONE 'UTC')::date "
        "FROM market.watchlist ORDER BY ticker",
    )
    added = {ticker: day for ticker, _, _, day in watch}
    assert [entry[:3] for entry in watch] == [
        ("GOOG", date(2015, 12, 24), None),
        ("IBM", date(2013, 9, 6), None),
        ("NVDA", added["NVDA"], None),
        ("SPY", date(2013, 9, 6), None),
    ]

    coverage = rows(
        url,
        "SELECT ticker, trade_date, status, last_error FROM market.ticker_day_coverage "
        "ORDER BY ticker, trade_date",
    )
    assert coverage == [
        ("GOOG", date(2015, 12, 24), "complete", None),
        ("IBM", date(2013, 9, 6), "complete", None),
        ("IBM", date(2013, 9, 9), "complete", None),
        ("IBM", date(2013, 9, 10), "blocked", BLOCKED_VERDICT),
        ("IBM", date(2013, 9, 11), "not_fetched", None),
        ("IBM", date(2015, 12, 24), "not_fetched", None),
        ("SPY", date(2013, 9, 6), "complete", None),
        ("SPY", date(2013, 9, 9), "complete", None),
        ("SPY", date(2013, 9, 10), "complete", None),
        ("SPY", date(2013, 9, 11), "failed", UNFINISHED),
        ("SPY", date(2015, 12, 24), "not_fetched", None),
    ]


def test_a_ticker_kept_for_its_history_only_stops_counting_after_its_last_stored_day(
    previous_release_url: str,
) -> None:
    """The previous release's demo kept its sample tickers inactive: watched for their history,
    never scheduled. Each counts until its last stored day, or not at all without rows."""
    url = previous_release_url
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE market.watchlist SET active = false WHERE ticker IN ('IBM', 'NVDA')")
    schema.upgrade(url)
    removed = dict(rows(url, "SELECT ticker, removed_on FROM market.watchlist WHERE NOT active"))
    assert removed["IBM"] == date(2013, 9, 11), "the day after its last stored day"
    nvda_start = rows(url, "SELECT history_start FROM market.watchlist WHERE ticker = 'NVDA'")
    assert removed["NVDA"] == nvda_start[0][0], "nothing stored: it never counts"
    assert rows(url, "SELECT count(*) FROM market.ticker_day_coverage WHERE ticker = 'NVDA'") == [
        (0,)
    ]


def test_upgrading_at_head_changes_nothing_and_costs_two_queries(
    previous_release_url: str,
) -> None:
    url = previous_release_url
    schema.upgrade(url)
    states = rows(url, "SELECT * FROM market.ticker_days ORDER BY ticker, trade_date")
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        done = schema.upgrade(url)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    assert done == schema.Upgrade(before=HEAD, after=HEAD)
    assert 1 <= len(statements) <= 2, statements
    assert not any("advisory" in statement for statement in statements)
    assert rows(url, "SELECT * FROM market.ticker_days ORDER BY ticker, trade_date") == states


UPGRADE_AND_PRINT = (
    "import sys; from candle_pipeline.warehouse.schema import upgrade; "
    "print(upgrade(sys.argv[1]).before)"
)


def test_two_processes_upgrading_at_once_both_succeed(previous_release_url: str) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_AND_PRINT, previous_release_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=TIMEOUT_SECONDS) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == sorted(["()", str(HEAD)])
    assert schema_differences(previous_release_url) == []
    assert rows(previous_release_url, "SELECT count(*) FROM market.ticker_days") == [(13,)]


def run_cli(args: list[str], database_url: str, state_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CANDLE_DATABASE_URL": database_url, "CANDLE_STATE_DIR": str(state_dir)}
    for exported in ("DAGSTER_HOME", "CANDLE_DAGSTER_DATABASE_URL"):
        env.pop(exported, None)
    return subprocess.run(
        [sys.executable, "-m", "candle_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def test_db_upgrade_prints_the_revisions(previous_release_url: str, tmp_path: Path) -> None:
    [head] = HEAD
    first = run_cli(["db", "upgrade"], previous_release_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"schema revision before: none (made before migrations: stamped {schema.FIRST_RELEASE})",
        f"schema revision after:  {head} (head)",
    ]
    again = run_cli(["db", "upgrade"], previous_release_url, tmp_path)
    assert again.stdout.splitlines() == [
        f"schema revision before: {head}",
        f"schema revision after:  {head} (head)",
    ]


def test_db_upgrade_of_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    gone = run_cli(["db", "upgrade"], "postgresql://nobody@/never?host=/nonexistent", tmp_path)
    assert gone.returncode == EXIT_FAILED
    [line] = gone.stderr.splitlines()
    assert line.startswith("candle-pipeline: error: cannot reach the database:")


@pytest.fixture
def external_warehouse(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """`warehouse_url` as CANDLE_DATABASE_URL, for commands run in this process."""
    monkeypatch.setenv("CANDLE_DATABASE_URL", warehouse_url)
    monkeypatch.setenv("CANDLE_STATE_DIR", str(tmp_path / "state"))
    for exported in ("DAGSTER_HOME", "CANDLE_DAGSTER_DATABASE_URL", "CANDLE_COMPUTE_LOG_DIR"):
        monkeypatch.setenv(exported, "")
        monkeypatch.delenv(exported)
    get_settings.cache_clear()
    get_operations_settings.cache_clear()
    yield warehouse_url
    get_settings.cache_clear()
    get_operations_settings.cache_clear()


def test_a_failed_migration_changes_nothing_and_says_so_in_one_line(
    external_warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    load_previous_release(external_warehouse)
    with engine_for(external_warehouse).begin() as conn:
        conn.execute(sa.text("CREATE TABLE market.ticker_days (ticker text)"))
    assert main(["db", "upgrade"]) == EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"candle-pipeline: error: upgrading the warehouse from none to {HEAD[0]} failed and "
        'changed nothing: relation "ticker_days" already exists'
    )
    with engine_for(external_warehouse).connect() as conn:
        assert schema.current_revisions(conn) == ()
        columns = sa.inspect(conn).get_columns("watchlist", schema="market")
    assert "removed_on" not in {column["name"] for column in columns}


def test_a_warehouse_with_only_some_old_tables_is_refused(
    external_warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with engine_for(external_warehouse).begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA market"))
        conn.execute(sa.text("CREATE TABLE market.watchlist (ticker text)"))
    assert main(["db", "upgrade"]) == EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert "holds watchlist but not candles, corporate_actions" in line
    assert "use a fresh database" in line


def test_doctor_reports_the_revision_and_says_to_upgrade(
    external_warehouse: str,
    pg_server: LocalPostgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from candle_pipeline import doctor  # noqa: PLC0415 - loads Dagster

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_DIR / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CANDLE_DAGSTER_DATABASE_URL", create_database(pg_server, "dagster"))
    load_previous_release(external_warehouse)

    def warehouse_finding() -> doctor.Finding:
        [finding] = [f for f in doctor.diagnose() if f.area == "warehouse"]
        return finding

    [head] = HEAD
    behind = warehouse_finding()
    assert behind.state == doctor.PROBLEM
    assert "schema market has no revision" in behind.message
    assert behind.message.endswith("run `candle-pipeline db upgrade`")

    with engine_for(external_warehouse).begin() as conn:
        command.stamp(schema.alembic_config(conn), schema.FIRST_RELEASE)
    behind = warehouse_finding()
    assert behind.state == doctor.PROBLEM
    assert f"is at revision {schema.FIRST_RELEASE}, behind {head}" in behind.message
    assert behind.message.endswith("run `candle-pipeline db upgrade`")

    schema.upgrade(external_warehouse)
    current = warehouse_finding()
    assert current.state == doctor.OK
    assert current.message.endswith(f"schema market at revision {head} (head)")
