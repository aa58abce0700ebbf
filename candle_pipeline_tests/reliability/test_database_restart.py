"""PostgreSQL restarted under a run: a unit of work cut by the restart is run again whole on a new
connection, a read made while the server is down waits for it, and a catch-up run completes the
days with every ticker-day stored once and none missing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from candle_pipeline import runs
from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import replace_partitions
from candle_pipeline.warehouse.tables import TABLES
from candle_pipeline_tests.conftest import (
    command_line_env,
    create_database,
    definitions_for,
    table,
    watch,
)
from candle_pipeline_tests.reliability.warehouse_probe import Key, Probe, assert_complete

TICKERS = ("SPY", "AIG", "BAC", "IBM")
# Monday to Friday, five sessions: one run (CANDLE_BACKFILL_DAYS_PER_RUN is 5 for minute bars).
START, END = date(2013, 10, 7), date(2013, 10, 11)
CANDLES_PER_SESSION = 78 + 26 + 13 + 7 + 2 + 1
# How long the server stays away; the warehouse's retries wait 0.5 s, 1 s, 2 s ... (6 attempts).
DOWN_SECONDS = 2.0
RUN_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.005
RETRY_MESSAGE = "database connection lost"

pytestmark = pytest.mark.integration


@pytest.fixture
def own_server() -> Iterator[LocalPostgres]:
    """A server of this test's own, since the test restarts it."""
    with throwaway_server(prefix="candle-restart-") as server:
        yield server


def session_rows() -> dict[Key, int]:
    """The minute bars of each sample session of TICKERS between START and END."""
    rows = {}
    for ticker in TICKERS:
        for path in sorted((SAMPLE_DATA_DIR / "lean-minute" / ticker).glob("*.csv")):
            day = date.fromisoformat(path.stem)
            if START <= day <= END:
                rows[(ticker, day)] = len(pd.read_csv(path))
    return rows


def assert_every_ticker_day_stored_once(url: str) -> None:
    """Each ticker-day complete and whole in every table: nothing missing, nothing twice."""
    probe = Probe(url)
    try:
        stored = probe.ticker_days()
    finally:
        probe.close()
    sessions = session_rows()
    assert len(sessions) == len(TICKERS) * ((END - START).days + 1)
    assert set(stored) == set(sessions), "one state per ticker and session"
    for key, day in stored.items():
        assert_complete(key, day, sessions[key], CANDLES_PER_SESSION)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "candle_pipeline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_restart_inside_the_write_transaction_then_a_catch_up(
    own_server: LocalPostgres, tmp_path: Path
) -> None:
    """The command line's run, its Dagster instance and warehouse on one server, restarted while
    the run's unit of work holds its first table lock."""
    url = create_database(own_server, "warehouse")
    watch(url, TICKERS, START)
    application = "candle-restart-test"
    env = {
        **os.environ,
        **command_line_env(tmp_path, url),
        "PGAPPNAME": application,
    }
    args = ["materialize", "--start", START.isoformat(), "--end", END.isoformat()]
    probe = Probe(url)
    interrupted = run_cli(args, env)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while "raw_quotes" not in probe.locked_tables(application):
            assert interrupted.poll() is None, interrupted.communicate()[0]
            assert time.monotonic() < deadline, "the run never wrote"
            time.sleep(POLL_SECONDS)
    finally:
        probe.close()
    own_server.restart()
    output, _ = interrupted.communicate(timeout=RUN_TIMEOUT_SECONDS)
    assert interrupted.returncode == 0, output
    assert RETRY_MESSAGE in output, "the cut transaction was run again"

    catch_up = run_cli(args, env)
    output, _ = catch_up.communicate(timeout=RUN_TIMEOUT_SECONDS)
    assert catch_up.returncode == 0, output
    assert_every_ticker_day_stored_once(url)


def test_runs_started_while_the_server_is_down_wait_for_it(
    own_server: LocalPostgres, instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture
) -> None:
    """Every read of a run waits for the server: market_timings' (the watch list) and
    market_data's (the stored timings, the watch list, the ticker-days' states, ...). The
    Dagster instance lives on another server."""
    url = create_database(own_server, "warehouse")
    watch(url, TICKERS, START)
    defs = definitions_for(url)
    caplog.set_level(logging.WARNING)
    for select in (["market_timings"], list(runs.MARKET_DATA_ASSETS)):
        own_server.stop()
        back = threading.Timer(DOWN_SECONDS, own_server.start)
        back.start()
        try:
            outcomes = runs.materialize(defs, instance, START, END, select=select)
        finally:
            back.join()
        assert outcomes and all(o.success for o in outcomes), [o.error for o in outcomes]
        assert RETRY_MESSAGE in caplog.text, f"{select} waited for the server"
        caplog.clear()
    assert_every_ticker_day_stored_once(url)


def test_a_unit_of_work_cut_by_a_restart_runs_again_whole_on_a_new_connection(
    own_server: LocalPostgres,
) -> None:
    url = create_database(own_server, "warehouse")
    watch(url, ["SPY"], START)
    warehouse = WarehouseResource(database_url=url)
    day = pd.Timestamp(START)
    candles = pd.DataFrame(
        {
            "ticker": "SPY",
            "trade_date": day,
            "interval": "1d",
            "ts": [pd.Timestamp(START, tz="UTC")],
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 10.0,
            "bar_count": 1,
        }
    )
    actions = pd.DataFrame(
        {
            "ticker": ["SPY"],
            "ex_date": day,
            "dividend": 0.5,
            "split_ratio": float("nan"),
            "source": "csv",
            "fetched_at": pd.Timestamp(datetime(2013, 10, 5, tzinfo=UTC)),
            "currency": "USD",
            "reference_close": 168.5,
            "first_seen": pd.Timestamp(datetime(2013, 10, 5, tzinfo=UTC)),
        }
    )
    calls: list[tuple[str, psycopg.Connection]] = []

    def write_candles(conn: psycopg.Connection) -> int:
        calls.append(("candles", conn))
        written = replace_partitions(conn, TABLES["candles"], [(START, "SPY")], candles)
        if len(calls) == 1:
            own_server.restart()
        return written

    def write_actions(conn: psycopg.Connection) -> int:
        calls.append(("corporate_actions", conn))
        return replace_partitions(conn, TABLES["corporate_actions"], [(START, "SPY")], actions)

    with warehouse.unit_of_work():
        warehouse.write(write_candles)
        warehouse.write(write_actions)
        assert calls == [], "nothing is written before the unit of work ends"

    assert [name for name, _ in calls] == ["candles", "corporate_actions"] * 2
    first, second = calls[0][1], calls[2][1]
    assert calls[1][1] is first and calls[3][1] is second
    assert second is not first, "the second attempt ran on a new connection"
    assert len(table(url, "candles")) == 1
    assert len(table(url, "corporate_actions")) == 1
