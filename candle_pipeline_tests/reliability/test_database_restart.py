"""PostgreSQL restarted under a run: the write is retried or fails clearly; a catch-up completes."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for, ensure_tables
from candle_pipeline.settings import PROJECT_DIR, SAMPLE_DATA_DIR
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES
from candle_pipeline_tests.conftest import create_database
from candle_pipeline_tests.reliability.writer import PARTITIONS, generation_frame

TICKERS = "SPY,AIG,BAC,IBM"
START, END = "2013-10-04", "2013-10-11"
SECONDS_BEFORE_RESTART = 6.0


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A server of this test's own, since the test restarts it."""
    with throwaway_server(prefix="candle-restart-") as server:
        yield server


def expected_raw_rows() -> int:
    total = 0
    for ticker in TICKERS.split(","):
        for path in (SAMPLE_DATA_DIR / "lean-minute" / ticker).glob("2013-10-*.csv"):
            total += sum(1 for _ in path.open()) - 1
    return total


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "candle_pipeline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def counts(url: str) -> dict[str, tuple[int, int]]:
    """Rows and distinct keys per table: equal numbers mean no duplicates."""
    with engine_for(url).connect() as conn:
        return {
            table: tuple(
                conn.execute(
                    sa.text(
                        "SELECT count(*), count(DISTINCT (ticker, interval, ts)) "
                        f"FROM market.{table}"
                    )
                ).one()
            )
            for table in ("raw_quotes", "validated_quotes", "candles")
        }


def test_restart_during_a_run_then_catch_up(own_server: LocalPostgres, tmp_path: Path) -> None:
    url = create_database(own_server, "warehouse")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "CANDLE_DATABASE_URL": url,
        "CANDLE_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_HOME": str(home),
    }
    assert run_cli(["tickers", "add", *TICKERS.split(",")], env).wait() == 0
    args = ["materialize", "--tickers", TICKERS, "--start", START, "--end", END]
    interrupted = run_cli(args, env)
    time.sleep(SECONDS_BEFORE_RESTART)
    own_server.restart()
    output, _ = interrupted.communicate(timeout=600)
    if interrupted.returncode != 0:
        assert "Traceback" not in output.splitlines()[-1]
        assert "error" in output.lower()

    catch_up = run_cli(args, env)
    output, _ = catch_up.communicate(timeout=600)
    assert catch_up.returncode == 0, output
    after = counts(url)
    for rows, distinct in after.values():
        assert rows == distinct, "no duplicated rows"
    assert after["raw_quotes"][0] == after["validated_quotes"][0] == expected_raw_rows()
    assert after["candles"][0] == 24 * (78 + 26 + 13 + 7 + 1), "no missing candles"


def test_a_transaction_cut_by_a_restart_runs_again_on_a_new_connection(
    own_server: LocalPostgres,
) -> None:
    url = create_database(own_server, "warehouse")
    ensure_tables(url)
    warehouse = WarehouseResource(database_url=url)
    frame = generation_frame(1)
    attempts = []

    def write(conn: psycopg.Connection) -> int:
        attempts.append(conn)
        if len(attempts) == 1:
            own_server.restart()
        return replace_partitions(conn, TABLES["candles"], PARTITIONS, frame)

    assert warehouse.run(write) == len(frame)
    assert len(attempts) == 2
    assert attempts[0] is not attempts[1], "the retry used a new connection"
    with engine_for(url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM market.candles")).scalar() == len(frame)
