"""Two runs writing the same days at once take turns: each takes the writer locks of the tables in
one fixed order inside its one transaction, so neither deadlocks nor hits a duplicate key, both
succeed, and a reader sees every ticker-day whole, from one run, at every moment. A run that
re-validates stored rows while another run replaces them does not store its stale result."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import psycopg
import pytest

from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline_tests.conftest import command_line_env, create_database, watch
from candle_pipeline_tests.reliability.warehouse_probe import (
    Key,
    Probe,
    TickerDay,
    assert_complete,
)

TICKERS = tuple(f"C{number:02d}" for number in range(16))
FIRST_DAY, LAST_DAY = date(2020, 1, 2), date(2020, 1, 3)
KEYS = {(ticker, day) for ticker in TICKERS for day in (FIRST_DAY, LAST_DAY)}
# Synthetic minute bars of a full NYSE session, and the candles built from them.
RAW_ROWS = 390
CANDLES = 78 + 26 + 13 + 7 + 2 + 1
RUNS = ("candle-concurrent-a", "candle-concurrent-b")
TIMEOUT_SECONDS = 180.0
POLL_SECONDS = 0.005

pytestmark = pytest.mark.integration


def stop(runs: Iterable[subprocess.Popen[str]]) -> None:
    """Kill the runs still going (a failed test)."""
    for run in runs:
        if run.poll() is None:
            run.kill()
            run.communicate()


def assert_whole(ticker_days: dict[Key, TickerDay]) -> None:
    """Every ticker-day stored is whole in every table, and all come from one run."""
    for key, day in ticker_days.items():
        assert_complete(key, day, RAW_ROWS, CANDLES)
    assert len({day.run_id for day in ticker_days.values()}) <= 1, "one run's ticker-days"


@pytest.fixture
def warehouse(pg_server: LocalPostgres, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A warehouse watching TICKERS, and the command line's environment on it (synthetic bars)."""
    url = create_database(pg_server, "warehouse")
    watch(url, TICKERS, FIRST_DAY)
    env = {
        **os.environ,
        **command_line_env(tmp_path, url, create_database(pg_server, "dagster")),
        "CANDLE_SOURCE": "synthetic",
        "CANDLE_SYNTHETIC_INTERVAL": "1m",
    }
    return url, env


def materialize(env: dict[str, str], application: str, *options: str) -> subprocess.Popen[str]:
    """`candle-pipeline materialize` of the two days in its own process."""
    days = ["--start", FIRST_DAY.isoformat(), "--end", LAST_DAY.isoformat()]
    return subprocess.Popen(
        [sys.executable, "-m", "candle_pipeline.cli", "materialize", *days, *options],
        env={**env, "PGAPPNAME": application},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def hold(url: str, table: str) -> psycopg.Connection:
    """A transaction holding `table`'s writer lock until it commits."""
    gate = psycopg.connect(url)
    gate.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"market.{table}",))
    return gate


def wait_for_lock(probe: Probe, runs: dict[str, subprocess.Popen[str]]) -> None:
    """Until each of `runs` waits for a writer lock."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not all(probe.waiting(application) for application in runs):
        ended = {name: run.communicate()[0] for name, run in runs.items() if run.poll() is not None}
        assert not ended, ended
        assert time.monotonic() < deadline, "the runs never reached their writes"
        time.sleep(POLL_SECONDS)


def test_two_runs_of_the_same_days_take_turns(warehouse: tuple[str, dict[str, str]]) -> None:
    """Both fetch every ticker-day of an empty warehouse and meet at the first table lock."""
    url, env = warehouse
    probe = Probe(url)
    gate = hold(url, "raw_quotes")
    runs = {application: materialize(env, application) for application in RUNS}
    snapshots: list[dict[Key, TickerDay]] = []
    waited_for_the_other = threading.Event()
    done = threading.Event()

    def read() -> None:
        """Snapshots of the warehouse, and whether one run waited while the other wrote."""
        reader = Probe(url)
        try:
            while not done.is_set():
                snapshots.append(reader.ticker_days())
                if any(reader.waiting(application) for application in RUNS):
                    waited_for_the_other.set()
        finally:
            reader.close()

    try:
        wait_for_lock(probe, runs)
        reader = threading.Thread(target=read)
        reader.start()
        gate.commit()
        outputs = [run.communicate(timeout=TIMEOUT_SECONDS)[0] for run in runs.values()]
        done.set()
        reader.join()
    finally:
        gate.close()
        stop(runs.values())

    for run, output in zip(runs.values(), outputs, strict=True):
        assert run.returncode == 0, output
        assert "deadlock" not in output and "duplicate key" not in output, output
    assert waited_for_the_other.is_set(), "one run waited for the other's writer lock"
    final = probe.ticker_days()
    probe.close()
    assert set(final) == KEYS
    assert_whole(final)
    for snapshot in snapshots:
        assert set(snapshot) in (set(), KEYS), "a run's ticker-days commit together"
        assert_whole(snapshot)
    assert any(snapshots), "the reader saw the first run's commit while the second ran"


def test_a_revalidation_racing_a_refetch_stores_nothing_stale(
    warehouse: tuple[str, dict[str, str]],
) -> None:
    """A re-validation (validated_quotes and candles, from the stored raw quotes) reads the raw
    quotes a refetch is about to replace, and commits after it: it must not pair the new raw
    quotes with validated quotes of the old ones. It fails, naming the ticker-days, and writes
    nothing; run again, it succeeds."""
    url, env = warehouse
    assert materialize(env, "candle-concurrent-first").wait() == 0
    probe = Probe(url)
    gate = hold(url, "validated_quotes")
    refetch, revalidate = "candle-concurrent-refetch", "candle-concurrent-revalidate"
    select = ("--select", "validated_quotes,candles")
    runs = {refetch: materialize(env, refetch, "--refetch")}
    try:
        wait_for_lock(probe, runs)
        # The refetch holds raw_quotes' lock and waits for validated_quotes'; the re-validation
        # reads the stored (old) raw quotes meanwhile, then waits too.
        runs[revalidate] = materialize(env, revalidate, *select)
        wait_for_lock(probe, runs)
        gate.commit()
        outputs = {name: run.communicate(timeout=TIMEOUT_SECONDS)[0] for name, run in runs.items()}
    finally:
        gate.close()
        stop(runs.values())

    assert runs[refetch].returncode == 0, outputs[refetch]
    assert runs[revalidate].returncode != 0, outputs[revalidate]
    assert "were rewritten by another run" in outputs[revalidate]
    after_race = probe.ticker_days()
    assert set(after_race) == KEYS
    assert_whole(after_race)
    again = materialize(env, revalidate, *select)
    output = again.communicate(timeout=TIMEOUT_SECONDS)[0]
    assert again.returncode == 0, output
    final = probe.ticker_days()
    probe.close()
    assert_whole(final)
    assert {day.run_id for day in final.values()} != {day.run_id for day in after_race.values()}
