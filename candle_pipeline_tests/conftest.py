"""Shared fixtures: a real PostgreSQL server per test worker, fresh databases, Dagster instances."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.warehouse import dispose_engines, engine_for, ensure_tables
from candle_pipeline.settings import (
    ENV_BACKFILL_DAYS_PER_RUN,
    PROJECT_DIR,
    Settings,
    get_operations_settings,
    get_quality_settings,
    get_settings,
)
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.backfill_driver import shipped_storage

FIXTURES_DIR = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def close_warehouse_connections() -> Iterator[None]:
    """Each test's warehouse connections are closed after it: every test makes its own
    database, and an idle pooled connection kept to each would exhaust the server's."""
    yield
    dispose_engines()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """The session's PostgreSQL server, shared by the tests that do not stop it."""
    with throwaway_server(prefix="candle-pg-") as server:
        yield server


def create_database(server: LocalPostgres, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


@pytest.fixture
def warehouse_url(pg_server: LocalPostgres) -> str:
    """The URL of a new, empty warehouse database."""
    return create_database(pg_server, "warehouse")


@contextmanager
def postgres_instance(server: LocalPostgres) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance whose run, event and schedule storage is a new Postgres database,
    with the storage the project ships in dagster.yaml."""
    url = create_database(server, "dagster")
    with dg.instance_for_test(overrides={"storage": shipped_storage(url)}) as inst:
        yield inst


@pytest.fixture
def instance(pg_server: LocalPostgres) -> Iterator[dg.DagsterInstance]:
    with postgres_instance(pg_server) as inst:
        yield inst


def settings_for(csv_dir: Path = SAMPLE_DATA_DIR) -> Settings:
    return Settings.from_env({"CANDLE_CSV_DIR": str(csv_dir)})


def definitions_for(warehouse_url: str, csv_dir: Path = SAMPLE_DATA_DIR) -> dg.Definitions:
    """The real assets wired to a test warehouse and a CSV folder."""
    from candle_pipeline.definitions import (  # noqa: PLC0415
        ASSET_CHECKS,
        SENSORS,
        build_all_schedules,
        build_assets,
    )

    return dg.Definitions(
        assets=build_assets(get_settings()),
        asset_checks=ASSET_CHECKS,
        schedules=build_all_schedules(get_settings(), get_operations_settings()),
        sensors=SENSORS,
        resources=build_resources(settings_for(csv_dir), warehouse_url),
    )


def watch(
    warehouse_url: str,
    tickers: Sequence[str],
    history_start: date,
    *,
    exchange: str | None = None,
    removed_on: date | None = None,
    intraday: bool = False,
) -> list[str]:
    """Put `tickers` on the watch list from `history_start` (until `removed_on`, if given;
    marked for the intraday refresh with `intraday`)."""
    ensure_tables(warehouse_url)
    entries = [
        watchlist.NewTicker(
            ticker,
            exchange=exchange,
            history_start=history_start,
            active=removed_on is None,
            removed_on=removed_on,
            intraday=intraday,
        )
        for ticker in tickers
    ]
    with engine_for(warehouse_url).begin() as connection:
        return watchlist.add(connection, entries, settings_for().default_exchange, history_start)


def command_line_env(
    tmp_path: Path, warehouse_url: str, dagster_url: str | None = None
) -> dict[str, str]:
    """The settings of the command line on these databases: a DAGSTER_HOME under `tmp_path`
    holding the project's dagster.yaml (its instance on `dagster_url`, else on the warehouse's
    database) and a state folder of its own. Only these variables: callers add os.environ."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_DIR / "dagster.yaml").read_text())
    env = {
        "CANDLE_DATABASE_URL": warehouse_url,
        "CANDLE_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_HOME": str(home),
    }
    if dagster_url is not None:
        env["CANDLE_DAGSTER_DATABASE_URL"] = dagster_url
    return env


@pytest.fixture
def external_env(
    pg_server: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """An external warehouse and instance with the project's dagster.yaml, as the commands in
    this process see them; nothing prepared in either. Every variable the commands export is
    restored afterwards."""
    env = command_line_env(
        tmp_path,
        create_database(pg_server, "warehouse"),
        create_database(pg_server, "dagster"),
    )
    for name in ("CANDLE_MAX_CONCURRENT_RUNS", "CANDLE_COMPUTE_LOG_DIR", "CANDLE_CSV_DIR"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_settings()
    yield env
    clear_settings()


def clear_settings() -> None:
    """Forget the settings this process read, so that the next command reads them again."""
    for cached in (get_settings, get_operations_settings, get_quality_settings):
        cached.cache_clear()


def table(warehouse_url: str, name: str) -> pd.DataFrame:
    """A whole warehouse table, in key order."""
    with engine_for(warehouse_url).connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM market.{name}"), conn)
    keys = [
        c for c in ("ticker", "mic", "interval", "ts", "trade_date", "session_date") if c in frame
    ]
    return frame.sort_values(keys).reset_index(drop=True)


@contextmanager
def today_is(day: date) -> Iterator[None]:
    """Pin the last day partition, which is what the sensors take for today, to `day`."""
    moment = datetime.combine(day, time(12), tzinfo=UTC)
    with dg.partition_loading_context(effective_dt=moment):
        yield


@pytest.fixture
def days_per_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """`days_per_run(n)`: CANDLE_BACKFILL_DAYS_PER_RUN=n for this test (settings read again)."""

    def use(days: int) -> None:
        monkeypatch.setenv(ENV_BACKFILL_DAYS_PER_RUN, str(days))
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()
