"""Real runs killed with SIGKILL at random moments leave every ticker-day as it was or complete in
every table: never raw quotes without their validated quotes, candles, report or state.

A warehouse of synthetic tickers over two days, half of them complete already, is rewritten by
`candle-pipeline materialize --refetch` runs (`writer.py`: the real command line with a real
Dagster instance, each run in a process of its own forked from one that imported the command line
once), each killed at a moment drawn from a seeded generator:
early in the run, while fetching, while processing, inside the write transaction (holding the
lock of a table drawn at random, seen in `pg_locks`) or just after a commit. At the moment of the
kill the writer is frozen (SIGSTOP) to see which table locks its connection holds, made to write
its Python stack (SIGUSR1), and killed (SIGKILL).

After each kill, per ticker-day across raw_quotes, validated_quotes, candles, quality_reports and
ticker_days: every row comes from one fetch, the one ticker_days records, with its row count, its
candles and its run's quality report; the ticker-day is either exactly as before the kill or the
killed run's complete rewrite; no ticker-day is lost or half written.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import PROJECT_DIR
from candle_pipeline_tests.conftest import command_line_env, create_database, watch
from candle_pipeline_tests.reliability.warehouse_probe import (
    Key,
    Probe,
    TickerDay,
    assert_complete,
)
from candle_pipeline_tests.reliability.writer import READY

SEED = 20261124
TICKERS = tuple(f"K{number:02d}" for number in range(24))
# Complete before the first kill; the others first appear with the first committed run.
COMPLETE_BEFORE = TICKERS[: len(TICKERS) // 2]
FIRST_DAY, LAST_DAY = date(2020, 1, 2), date(2020, 1, 3)
KEYS = {(ticker, day) for ticker in TICKERS for day in (FIRST_DAY, LAST_DAY)}
# Synthetic minute bars of a full NYSE session, and the 5m, 15m, 30m, 1h and 1d candles of them.
RAW_ROWS = 390
CANDLES = 78 + 26 + 13 + 7 + 2 + 1
# Where the kills are aimed: (after what, how many seconds later at least and at most): the start,
# the run's market_timings commit (market_data then fetches for a few tenths of a second, then
# validates for about a second), a lock of the write transaction, the commit. The generator
# shuffles them, picks the tables and draws each delay; where a kill landed is observed.
AIMS = (
    ("go", 0.0, 1.5),
    ("timings", 0.1, 0.5),
    ("timings", 0.1, 0.5),
    ("timings", 0.6, 1.2),
    ("lock", 0.0, 0.05),
    ("lock", 0.0, 0.05),
    ("lock", 0.0, 0.05),
    ("lock", 0.0, 0.05),
    ("commit", 0.0, 0.5),
    ("commit", 0.0, 0.5),
)
LOCK_TARGETS = ("raw_quotes", "validated_quotes", "candles")
SPAWNED_AHEAD = 2
POLL_SECONDS = 0.003
STACK_SETTLE_SECONDS = 0.02
TIMEOUT_SECONDS = 120.0
AFTER_A_COMMIT = "after a commit"

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Kill:
    aim: str
    seconds_after_go: float
    locked: tuple[str, ...]
    phase: str
    committed: bool

    @property
    def landed(self) -> str:
        if self.committed:
            return AFTER_A_COMMIT
        if self.locked:
            return f"writing, holding the lock of {self.locked[-1]}"
        return f"before the write transaction: {self.phase}"


def describe(changed: dict[Key, tuple[TickerDay | None, TickerDay]]) -> str:
    key = min(changed)
    old, new = changed[key]
    return f"{len(changed)}, e.g. {key}: before {old}, after {new}"


def main_thread(dump: str) -> str:
    """The main thread's frames in a `faulthandler` dump: the stacks whose outermost frame is not
    `threading`'s start of a thread (a stack deeper than 100 frames ends with `...`; a C
    extension's extra thread state of the main thread shows `<no Python frame>`)."""
    blocks = [block.strip() for block in dump.split("\n\n")]
    return "\n".join(block for block in blocks if not block.endswith(" in _bootstrap"))


def stack_phase(dump: str) -> str:
    """Where the writer's main thread was, from its `faulthandler` stack."""
    frames = re.findall(r'File "([^"]+)", line \d+ in (\S+)', main_thread(dump))
    project = {
        f"{Path(path).parent.name}/{Path(path).name}:{function}" for path, function in frames
    }
    if "resources/market_data.py:fetch_all" in project:
        return "fetching"
    if any(frame.startswith("domain/processing.py:") for frame in project):
        return "validating, scoring and aggregating"
    if "warehouse/partition_store.py:replace_partitions" in project:
        return "writing"
    if "assets/market_data.py:market_data" in project:
        return "in the market_data step"
    if "assets/market_timings.py:market_timings" in project:
        return "in the market_timings step"
    return "starting or ending a run"


class Forks:
    """`writer.py`: one process that has imported the command line, forking writers on demand."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.folder = folder
        self.env = env
        self.pids: list[int] = []
        with (folder / "forks.log").open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "candle_pipeline_tests.reliability.writer"],
                env=env,
                cwd=PROJECT_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == READY, f"{line!r}: {(folder / 'forks.log').read_text()[-3000:]}"

    def writer(self, number: int, args: list[str], *, loop: bool) -> Writer:
        assert self.process.stdin is not None and self.process.stdout is not None
        writer = Writer(number, self.folder)
        request = {
            "args": args,
            "loop": loop,
            "application": writer.application,
            "log": str(writer.log),
            "stacks": str(writer.stacks),
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        writer.pid = int(self.process.stdout.readline())
        self.pids.append(writer.pid)
        return writer

    def close(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.communicate()


class Writer:
    """A forked `candle-pipeline materialize`, running from the moment it is forked."""

    def __init__(self, number: int, folder: Path) -> None:
        self.application = f"candle-kill-test-{number}"
        self.log = folder / f"writer-{number}.log"
        self.log.touch()
        self.stacks = folder / f"writer-{number}.stacks"
        self.pid = 0
        self.started = time.monotonic()

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def exit_code(self) -> int | None:
        """What its command line returned, once it has ended."""
        ends = [line for line in self.log.read_text().splitlines() if line.startswith("exit ")]
        return int(ends[-1].split()[1]) if ends and not self.alive() else None

    def stop(self) -> None:
        log = self.log.read_text()
        assert self.alive(), f"the writer ended: {log[-3000:]}"
        failed = [
            line for line in log.splitlines() if line.startswith("exit ") and line != "exit 0"
        ]
        assert not failed, f"a run failed: {log[-3000:]}"
        os.kill(self.pid, signal.SIGSTOP)

    def _stacks_written(self) -> bool:
        """The dump is done when the file has stopped growing."""
        size = self.stacks.stat().st_size
        time.sleep(STACK_SETTLE_SECONDS)
        return size > 0 and self.stacks.stat().st_size == size

    def stack_then_kill(self) -> str:
        """Its stack where it stopped (SIGUSR1 is handled as SIGCONT resumes it), then SIGKILL."""
        os.kill(self.pid, signal.SIGUSR1)
        os.kill(self.pid, signal.SIGCONT)
        wait_until(self._stacks_written, time.monotonic() + TIMEOUT_SECONDS, "the stack")
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not self.alive(), time.monotonic() + TIMEOUT_SECONDS, "the kill")
        return self.stacks.read_text()


def wait_until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_SECONDS)


def aim_and_stop(
    writer: Writer,
    probe: Probe,
    aim: str,
    *,
    delay: float,
    table: str,
    marks: tuple[int, set[str]],
) -> None:
    """Let the writer run until `delay` seconds after the event aimed at, then freeze it.
    `marks`: the market timings' version and the ticker-days' runs before the writer started."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    version, run_ids = marks
    if aim == "timings":
        # The run's first step has rewritten the days' market timings: market_data starts.
        wait_until(lambda: probe.timings_version() != version, deadline, "market_timings")
    elif aim == "lock":
        wait_until(lambda: table in probe.locked_tables(writer.application), deadline, table)
    elif aim == "commit":
        wait_until(lambda: probe.run_ids() != run_ids, deadline, "a commit")
    time.sleep(delay)
    writer.stop()


@pytest.fixture
def watched(pg_server: LocalPostgres) -> Iterator[tuple[str, Probe]]:
    url = create_database(pg_server, "warehouse")
    watch(url, TICKERS, FIRST_DAY)
    probe = Probe(url)
    try:
        yield url, probe
    finally:
        probe.close()


def test_runs_killed_at_random_moments_leave_each_ticker_day_old_or_complete(
    pg_server: LocalPostgres, watched: tuple[str, Probe], tmp_path: Path
) -> None:
    url, probe = watched
    env = {
        **os.environ,
        **command_line_env(tmp_path, url, create_database(pg_server, "dagster")),
        "CANDLE_SOURCE": "synthetic",
        "CANDLE_SYNTHETIC_INTERVAL": "1m",
    }
    rng = random.Random(SEED)
    aims = list(AIMS)
    rng.shuffle(aims)
    days = ["materialize", "--start", FIRST_DAY.isoformat(), "--end", LAST_DAY.isoformat()]
    forks = Forks(env, tmp_path)
    try:
        kills = kill_runs(forks, probe, days, aims, rng)
    finally:
        forks.close()

    for kill in kills:
        print(kill)
    landed = Counter(kill.landed for kill in kills)
    print(dict(landed))
    assert landed[AFTER_A_COMMIT] >= 1, "some runs committed before their kill"
    assert sum(n for place, n in landed.items() if place.startswith("before")) >= 1, (
        "some kills came before the run wrote anything"
    )
    assert sum(1 for place in landed if place.startswith("writing")) >= 2, (
        "kills came inside the write transaction, at different tables"
    )


def kill_runs(
    forks: Forks,
    probe: Probe,
    days: list[str],
    aims: list[tuple[str, float, float]],
    rng: random.Random,
) -> list[Kill]:
    """Half the tickers stored by a first run, then a refetching writer killed per aim; the
    warehouse checked after each kill."""
    first = forks.writer(0, [*days, "--tickers", ",".join(COMPLETE_BEFORE)], loop=False)
    wait_until(
        lambda: first.exit_code() is not None, time.monotonic() + TIMEOUT_SECONDS, "the first run"
    )
    assert first.exit_code() == 0, first.log.read_text()[-3000:]
    before = probe.ticker_days()
    assert set(before) == {key for key in KEYS if key[0] in COMPLETE_BEFORE}
    for key, day in before.items():
        assert_complete(key, day, RAW_ROWS, CANDLES)

    kills: list[Kill] = []
    for number, (aim, shortest, longest) in enumerate(aims, start=1):
        delay, table = rng.uniform(shortest, longest), rng.choice(LOCK_TARGETS)
        # The probe's versions are read before the writer starts.
        marks = (probe.timings_version(), probe.run_ids())
        writer = forks.writer(number, [*days, "--refetch"], loop=True)
        aim_and_stop(writer, probe, aim, delay=delay, table=table, marks=marks)
        stopped = time.monotonic() - writer.started
        locked = probe.locked_tables(writer.application)
        phase = stack_phase(writer.stack_then_kill())
        wait_until(
            lambda application=writer.application: probe.backends(application) == 0,
            time.monotonic() + TIMEOUT_SECONDS,
            "the killed writer's connections to end",
        )

        after = probe.ticker_days()
        run_ids = {day.run_id for day in after.values()}
        assert len(run_ids) == 1, f"every ticker-day of the run's days from one run: {run_ids}"
        committed = run_ids != {day.run_id for day in before.values()}
        if committed:
            assert set(after) == KEYS, "a committed run stores every ticker-day of its days"
            for key, day in after.items():
                assert_complete(key, day, RAW_ROWS, CANDLES)
                if key in before:
                    assert day.fetched_at != before[key].fetched_at, f"{key} was fetched again"
        else:
            assert set(after) == set(before), "no ticker-day is lost or added"
            changed = {
                key: (before.get(key), day) for key, day in after.items() if day != before.get(key)
            }
            assert not changed, f"an uncommitted run changed ticker-days: {describe(changed)}"
        for run_id, reports in probe.reports_per_run().items():
            assert reports in {2 * len(COMPLETE_BEFORE), len(KEYS)}, (
                f"run {run_id} has {reports} quality reports: a run's reports commit together"
            )
        kills.append(Kill(aim, round(stopped, 2), locked, phase, committed))
        before = after
    return kills
