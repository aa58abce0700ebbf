"""Figure 3: what Dagster's own bookkeeping costs per day partition, on each instance storage.

A backfill of `days` day partitions of `market_timings` and `market_data` (the no-op graph
`bench.noop_definitions`: the project's assets, day partitions, policy and checks; no work) is
submitted to a real instance and driven by the backfill daemon's own iterations, runs executed in
process (`candle_pipeline_tests.backfill_driver`). Each candidate runs in a fresh process on a
fresh Dagster database of the benchmark's server (the embedded server's settings):

1. the storage shipped in dagster.yaml (`candle_pipeline.instance_storage`: pooled connections,
   batched planned events and materialisations, private dagster-postgres methods), on the
   server's socket: the baseline of every ratio;
2. stock dagster-postgres (`storage: postgres:`, NullPool, events one by one) over TCP to
   127.0.0.1 (the server also listens on loopback while it runs);
3. stock dagster-postgres over the server's Unix socket (libpq `host=<socket folder>`);
4. stock dagster-postgres through PgBouncer (Debian's `pgbouncer`, session pooling, on a free
   loopback port, run as the `postgres` user when we are root; it reaches the server through
   the socket).

Then, on the shipped storage (the fastest), the same backfill without the check evaluations
(the checks left out of the definitions: a backfill selects every check of the assets it
materialises) and without the per-day metadata. The machine's load drifts over a section that
lasts many minutes, so the shipped storage runs again after every other measurement: each ratio
is to the mean of the shipped runs either side of it, the shipped figure is their median. The
per-day figures extrapolate linearly to the 26-year history: every run covers the same number of
days and stores the same events per day.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench.common import ERROR_TAIL_CHARS, Report, child, create_database, section
from bench.noop_definitions import ENV_CHECKS, ENV_METADATA, SWITCHED_OFF
from candle_pipeline.local_postgres import (
    SOCKET_PORT,
    SUPERUSER,
    LocalPostgres,
    running_as_root,
)

SECTION = "storage"
DEFINITIONS_MODULE = "bench.noop_definitions"
BACKFILLED_ASSETS = ("market_timings", "raw_quotes", "validated_quotes", "candles")
FIRST_DAY = date(2000, 1, 3)
# The targets' history: 2000-01-03..2025-12-31, in day partitions.
TARGET_DAYS = (date(2025, 12, 31) - FIRST_DAY).days + 1
# Dagster's bookkeeping for the whole history must stay well under this (the pipeline's own work
# needs most of the 10-minute budget).
BOOKKEEPING_BUDGET_SECONDS = 180
EVENT_BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
MAX_ITERATIONS = 500
COMPLETED = "COMPLETED_SUCCESS"
LOOPBACK = "127.0.0.1"
PGBOUNCER = "pgbouncer"
# Where Debian installs it, off the PATH of users other than root.
DEBIAN_SBIN = Path("/usr/sbin")
# dagster-postgres uses no LISTEN, advisory lock or server-side cursor, so transaction pooling
# works too (and measured no faster); but its webserver engine sets statement_timeout per
# connection, session state that only session pooling keeps where it was set.
PGBOUNCER_POOL_MODE = "session"
# Client connections PgBouncer accepts and server connections it keeps per database: a NullPool
# storage opens a connection per statement, a handful at once at most.
PGBOUNCER_MAX_CLIENTS = 200
PGBOUNCER_POOL_SIZE = 10
READY_TIMEOUT_SECONDS = 30
READY_POLL_SECONDS = 0.1
MILLIS_PER_SECOND = 1000
SECONDS_PER_MINUTE = 60
PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class Candidate:
    """An instance storage to measure: dagster-postgres (`stock`) or the shipped one, and how
    its URL is made from the benchmark server's own URL of the candidate's fresh database."""

    label: str
    kind: str
    connect: Callable[[str], str]


@dataclass(frozen=True)
class Result:
    seconds: float
    runs: int
    iterations: int
    status: str
    events: int = 0
    check_evaluations: int = 0


@dataclass(frozen=True)
class Paired:
    """A measurement and its baseline: the mean of the shipped storage's runs just before and
    just after it (the machine's load drifts over a section of many minutes)."""

    label: str
    result: Result
    baseline_seconds: float

    @property
    def ratio(self) -> float:
        return self.result.seconds / self.baseline_seconds


def run(server: LocalPostgres, report: Report, days: int) -> None:
    section(f"3. Dagster's bookkeeping per day partition: a no-op backfill of {days} days")
    shipped = Candidate("shipped storage (private API), socket", "shipped", _socket_url)
    tcp = Candidate("stock dagster-postgres, TCP 127.0.0.1", "stock", _tcp_url)
    direct = Candidate("stock dagster-postgres, Unix socket", "stock", _socket_url)
    bouncer_label = f"stock dagster-postgres, PgBouncer ({PGBOUNCER_POOL_MODE} pooling)"

    def over_tcp() -> Result:
        with loopback_tcp(server):
            return _measure(server, tcp, days)

    def through_bouncer() -> Result:
        with pgbouncer(server) as port:
            bounced = Candidate(bouncer_label, "stock", partial(_bouncer_url, port=port))
            return _measure(server, bounced, days)

    measurements: list[tuple[str, Callable[[], Result]]] = [
        (tcp.label, over_tcp),
        (direct.label, partial(_measure, server, direct, days)),
        (bouncer_label, through_bouncer),
        (CHECKS_OFF, partial(_measure, server, shipped, days, {ENV_CHECKS: SWITCHED_OFF})),
        (METADATA_OFF, partial(_measure, server, shipped, days, {ENV_METADATA: SWITCHED_OFF})),
    ]
    baselines = [_measure(server, shipped, days)]
    paired: dict[str, Paired] = {}
    for label, measure in measurements:
        try:
            result = measure()
        except (OSError, RuntimeError) as error:
            report.add(SECTION, f"{label}: no figure", float("nan"), "", _tail(error))
            continue
        baselines.append(_measure(server, shipped, days))
        mean = statistics.mean(baseline.seconds for baseline in baselines[-2:])
        paired[label] = Paired(label, result, mean)

    first = baselines[0]
    report.add(
        SECTION,
        "stored events per day partition",
        first.events / days,
        "events",
        f"of which {first.check_evaluations / days:.1f} check evaluations, each stored on its "
        f"own; {first.runs} runs, {first.iterations} daemon iterations",
    )
    times = [baseline.seconds for baseline in baselines]
    median = statistics.median(times)
    report.add(
        SECTION,
        f"{shipped.label}: per day partition",
        median * MILLIS_PER_SECOND / days,
        "ms/day",
        f"median of {len(times)} runs between the others: {min(times):.1f}..{max(times):.1f} s "
        f"for {days} days (the machine's drift)",
    )
    _extrapolate(report, shipped.label, median, days)
    for label in (tcp.label, direct.label, bouncer_label):
        if label in paired:
            _report(report, paired[label], days)
    for label in (CHECKS_OFF, METADATA_OFF):
        if label in paired:
            _report_share(report, paired[label], days)


CHECKS_OFF = "shipped, without the check evaluations"
METADATA_OFF = "shipped, without the per-day metadata"


def _tail(error: Exception) -> str:
    return str(error)[-ERROR_TAIL_CHARS:]


def _report(report: Report, paired: Paired, days: int) -> None:
    seconds = paired.result.seconds
    report.add(
        SECTION,
        f"{paired.label}: per day partition",
        seconds * MILLIS_PER_SECOND / days,
        "ms/day",
        f"{seconds:.1f} s for {days} days; {paired.ratio:.2f}x shipped (runs either side)",
    )
    _extrapolate(report, paired.label, seconds, days)


def _extrapolate(report: Report, label: str, seconds: float, days: int) -> None:
    extrapolated = seconds * TARGET_DAYS / days
    verdict = "meets" if extrapolated < BOOKKEEPING_BUDGET_SECONDS else "misses"
    report.add(
        SECTION,
        f"{label}: {TARGET_DAYS:,} days (linear)",
        extrapolated / SECONDS_PER_MINUTE,
        "min",
        f"{verdict} the {BOOKKEEPING_BUDGET_SECONDS // SECONDS_PER_MINUTE} min budget",
    )


def _report_share(report: Report, paired: Paired, days: int) -> None:
    """What the left-out part cost: the shipped runs either side minus the run without it."""
    seconds = paired.result.seconds
    saved = paired.baseline_seconds - seconds
    report.add(
        SECTION,
        paired.label,
        seconds * MILLIS_PER_SECOND / days,
        "ms/day",
        f"{seconds:.1f} s for {days} days; the part left out: {saved:.1f} s of "
        f"{paired.baseline_seconds:.1f} s ({saved / paired.baseline_seconds:.0%})",
    )
    _extrapolate(report, paired.label, seconds, days)


# --- where the candidates connect -------------------------------------------------------------


def _socket_url(url: str) -> str:
    """The benchmark server's own URLs reach it through its Unix socket."""
    return url


def _tcp_url(url: str) -> str:
    return f"postgresql://{SUPERUSER}@{LOOPBACK}:{SOCKET_PORT}/{_database(url)}"


def _bouncer_url(url: str, port: int) -> str:
    return f"postgresql://{SUPERUSER}@{LOOPBACK}:{port}/{_database(url)}"


def _database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextmanager
def loopback_tcp(server: LocalPostgres) -> Iterator[None]:
    """The server also listens on 127.0.0.1 (its port) while inside; the socket only after.

    initdb's `--auth=trust` trusts loopback TCP connections too (pg_hba.conf)."""
    with socket.socket() as probe:
        if probe.connect_ex((LOOPBACK, SOCKET_PORT)) == 0:
            raise RuntimeError(f"{LOOPBACK}:{SOCKET_PORT} is taken: stop what listens there")
    _set_listen_addresses(server, LOOPBACK)
    try:
        yield
    finally:
        _set_listen_addresses(server, None)


def _set_listen_addresses(server: LocalPostgres, addresses: str | None) -> None:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        if addresses is None:
            conn.execute("ALTER SYSTEM RESET listen_addresses")
        else:
            conn.execute(f"ALTER SYSTEM SET listen_addresses = '{addresses}'")
    server.restart()


@contextmanager
def pgbouncer(server: LocalPostgres) -> Iterator[int]:
    """PgBouncer on a free loopback port in front of the server (reached through its socket),
    any database, the server's trust authentication; yields the port."""
    binary = shutil.which(PGBOUNCER) or shutil.which(str(DEBIAN_SBIN / PGBOUNCER))
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="candle-pgbouncer-"))
    port = _free_port()
    config = folder / "pgbouncer.ini"
    log = folder / "pgbouncer.log"
    (folder / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
    config.write_text(
        "[databases]\n"
        f"* = host={server.socket_dir} port={SOCKET_PORT} user={SUPERUSER}\n"
        "[pgbouncer]\n"
        f"listen_addr = {LOOPBACK}\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'userlist.txt'}\n"
        f"pool_mode = {PGBOUNCER_POOL_MODE}\n"
        f"max_client_conn = {PGBOUNCER_MAX_CLIENTS}\n"
        f"default_pool_size = {PGBOUNCER_POOL_SIZE}\n"
        f"logfile = {log}\n"
        # One log line per connection is a write per statement of a NullPool client.
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    folder.chmod(PRIVATE_DIR_MODE)
    # PgBouncer refuses to run as root.
    user = SUPERUSER if running_as_root() else None
    if user is not None:
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, user=user, group=None)
    # Its output goes to its log file only: a pipe nobody reads would fill and block it.
    process = subprocess.Popen(
        [binary, "--quiet", str(config)],
        user=user,
        extra_groups=[] if user else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_bouncer(process, port, log)
        yield port
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_for_bouncer(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {output.strip()}")
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(READY_POLL_SECONDS)
    raise RuntimeError(
        f"pgbouncer did not listen on {LOOPBACK}:{port} within {READY_TIMEOUT_SECONDS} s"
    )


# --- one candidate, in its own process --------------------------------------------------------


def _measure(
    server: LocalPostgres,
    candidate: Candidate,
    days: int,
    switches: Mapping[str, str] | None = None,
) -> Result:
    """The backfill on a fresh Dagster database, in a fresh process; events counted after."""
    own_url = create_database(server, "bench_storage")
    dagster_url = candidate.connect(own_url)
    env = {key: value for key, value in os.environ.items() if key != EVENT_BATCH_ENV}
    env.update(switches or {})
    arguments = ["--kind", candidate.kind, "--dagster-url", dagster_url, "--days", str(days)]
    started = time.perf_counter()
    result = Result(**child("bench.storage", arguments, env, f"{candidate.label}: the backfill"))
    if result.status != COMPLETED:
        raise RuntimeError(f"{candidate.label}: the backfill ended {result.status}: no figure")
    events, evaluations = _stored_events(own_url)
    print(
        f"  ({candidate.label}{_describe(switches)}: {result.seconds:.1f} s backfill, "
        f"process {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return Result(**{**asdict(result), "events": events, "check_evaluations": evaluations})


def _describe(switches: Mapping[str, str] | None) -> str:
    return "".join(f", {name}={value}" for name, value in (switches or {}).items())


def _stored_events(url: str) -> tuple[int, int]:
    """Rows of Dagster's event log, and how many of them are check evaluations."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER "
            "(WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION') FROM event_logs"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def storage_config(kind: str, dagster_url: str) -> dict[str, object]:
    """The instance's `storage` section: stock dagster-postgres, or the shipped one."""
    from candle_pipeline_tests.backfill_driver import shipped_storage  # noqa: PLC0415

    if kind == "stock":
        return {"postgres": {"postgres_url": dagster_url}}
    return shipped_storage(dagster_url)


def _worker(kind: str, dagster_url: str, days: int) -> Result:
    """In the child process: submit the backfill of every asset over `days` days, drive it."""
    from candle_pipeline_tests.backfill_driver import (  # noqa: PLC0415
        BackfillDriver,
        backfill_instance,
    )

    keys = [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(days)]
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    with (
        backfill_instance(storage_config(kind, dagster_url)) as instance,
        BackfillDriver.loaded(instance, DEFINITIONS_MODULE) as driver,
    ):
        backfill_id = driver.submit({name: keys for name in BACKFILLED_ASSETS}, run_config=quiet)
        outcome = driver.run(backfill_id, MAX_ITERATIONS)
    return Result(
        seconds=outcome.seconds,
        runs=len(outcome.runs),
        iterations=outcome.iterations,
        status=outcome.backfill.status.value,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="one storage backfill, in its own process")
    parser.add_argument("--kind", choices=["stock", "shipped"], required=True)
    parser.add_argument("--dagster-url", required=True)
    parser.add_argument("--days", type=int, required=True)
    args = parser.parse_args()
    print(json.dumps(asdict(_worker(args.kind, args.dagster_url, args.days))))


if __name__ == "__main__":
    main()
