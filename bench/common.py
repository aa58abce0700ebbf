"""What every benchmark section shares: the PostgreSQL server, databases, timing and printing."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.bars import raw_quotes
from candle_pipeline.domain.symbols import normalize_tickers
from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.providers.synthetic import SOURCE_NAME, SyntheticProvider
from candle_pipeline.settings import PROJECT_DIR, SP500_CONSTITUENTS

KIB = 1024
BYTES_PER_MIB = KIB * KIB


@dataclass
class Figure:
    """One measured figure, printed as `name: value unit` with an optional comparison."""

    section: str
    name: str
    value: float
    unit: str
    note: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)

    def add(self, section: str, name: str, value: float, unit: str, note: str = "") -> None:
        figure = Figure(section, name, value, unit, note)
        self.figures.append(figure)
        print(f"  {name:<58} {_format(value):>12} {unit:<12} {note}", flush=True)

    def markdown(self) -> str:
        lines = ["| section | figure | value | unit | note |", "|---|---|---:|---|---|"]
        lines.extend(
            f"| {f.section} | {f.name} | {_format(f.value)} | {f.unit} | {f.note} |"
            for f in self.figures
        )
        return "\n".join(lines)


WHOLE_NUMBER_FROM = 100
ONE_DECIMAL_FROM = 10


def _format(value: float) -> str:
    if abs(value) >= WHOLE_NUMBER_FROM:
        return f"{value:,.0f}"
    if abs(value) >= ONE_DECIMAL_FROM:
        return f"{value:.1f}"
    return f"{value:.3g}"


def section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def machine_description() -> str:
    """CPU, cores, memory, load and versions: what a reader needs to compare figures."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split()[1])
        memory = f"{total_kib / BYTES_PER_MIB:.1f} GiB"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory} RAM, {platform.system()} "
        f"{platform.release()}; load average {load}; Python {platform.python_version()}, "
        f"Dagster {version('dagster')}, pandas {version('pandas')}, NumPy {version('numpy')}, "
        f"psycopg {version('psycopg')}"
    )


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def postgres_server(durable: bool = True) -> AbstractContextManager[LocalPostgres]:
    """A throw-away PostgreSQL cluster with the embedded server's own settings."""
    return throwaway_server(prefix="candle-bench-", durable=durable)


def server_version(server: LocalPostgres) -> str:
    with psycopg.connect(server.url("postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else 'unknown'}"


def create_database(server: LocalPostgres, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


def best_of(repeats: int, run: Callable[[], object], setup: Callable[[], object] | None = None):
    """The shortest wall time of `repeats` runs (each after `setup`, untimed), and all times."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), times


def spread(times: Sequence[float]) -> str:
    if len(times) == 1:
        return "1 run"
    return f"best of {len(times)}, median {statistics.median(times):.2f}s"


def peak_rss_mib() -> float:
    """Peak resident memory of this process since it started (exec), MiB.

    /proc's VmHWM, not getrusage: ru_maxrss survives exec, so a child would report at least
    the size of the process that started it.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / KIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB


def tickers(count: int) -> list[str]:
    """The first `count` S&P 500 symbols (normalised), then made-up ones if more are needed."""
    listed = normalize_tickers(pd.read_csv(SP500_CONSTITUENTS)["Symbol"])
    extra = [f"ZZ{index:04d}" for index in range(max(0, count - len(listed)))]
    return (listed + extra)[:count]


def synthetic_raw(symbols: Sequence[str], days: Sequence[date], interval: str) -> pd.DataFrame:
    """Raw quotes as the `raw_quotes` asset would produce them from the synthetic source."""
    provider = SyntheticProvider(interval=interval)
    frames = [provider.fetch_bars(symbol, days).bars for symbol in symbols]
    return raw_quotes(frames, [datetime.now(UTC)] * len(frames), SOURCE_NAME)


ERROR_TAIL_CHARS = 4000


def child(module: str, arguments: Sequence[str], env: dict[str, str], what: str) -> dict:
    """Run `python -m module arguments` in a fresh process (its memory and imports its own) and
    return the JSON object it printed last; a failure raises with the end of its stderr."""
    completed = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr[-ERROR_TAIL_CHARS:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
