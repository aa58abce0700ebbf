"""The embedded PostgreSQL server: started under a state folder when no database URL is configured.

It listens only on a Unix socket inside its own folder (no TCP port to collide with, no password
to keep), and is run by the `postgres` user when we are root, because initdb refuses root.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "postgres"
SOCKET_PORT = 5432
# Unix socket paths are limited to 107 bytes by the kernel (sun_path).
MAX_SOCKET_PATH = 107
START_TIMEOUT_SECONDS = 60
PG_BIN_ENV = "CANDLE_PG_BIN"
# A throw-away server's folder is created by root (in tests and benchmarks) and must be
# traversable by the postgres user that runs the server.
TEMPORARY_ROOT_MODE = 0o755


class LocalPostgresError(RuntimeError):
    """The embedded server cannot be found, started or reached; the message says how to fix it."""


def find_pg_bin() -> Path:
    """The folder holding initdb and pg_ctl: $CANDLE_PG_BIN, PATH, Debian's layout, or pgserver."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    try:
        import pgserver  # noqa: PLC0415 - optional: only where no system PostgreSQL exists

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise LocalPostgresError(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them "
        "(`apt-get install postgresql`, or `pip install pgserver`), point "
        f"{PG_BIN_ENV} at their folder, or set CANDLE_DATABASE_URL to use an existing server."
    )


@dataclass(frozen=True)
class LocalPostgres:
    """A PostgreSQL cluster living in `root`: data in root/data, socket in root/run."""

    root: Path
    durable: bool = True

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        """A libpq URL reaching `database` through the cluster's socket, as the superuser."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.data_dir)], check=False)
        return result.returncode == 0

    def start(self) -> None:
        """Create the cluster if needed and start it; a running cluster is left as it is."""
        socket_path = self.socket_dir / f".s.PGSQL.{SOCKET_PORT}"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            raise LocalPostgresError(
                f"the socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
                "set CANDLE_STATE_DIR to a shorter folder"
            )
        if self.is_running():
            return
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        result = self._run(
            [
                "pg_ctl",
                "start",
                "-w",
                "-t",
                str(START_TIMEOUT_SECONDS),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
            ],
            check=False,
        )
        if result.returncode != 0:
            raise LocalPostgresError(
                f"the embedded PostgreSQL did not start: {result.stdout}{result.stderr}"
                f"\nSee its log: {self.log_file}"
            )

    def restart(self) -> None:
        """Stop the server (dropping every connection) and start it again."""
        self._run(
            [
                "pg_ctl",
                "restart",
                "-w",
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
            ]
        )

    def stop(self) -> None:
        if self.is_running():
            self._run(["pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data_dir)])

    def ensure_database(self, database: str) -> str:
        """Create `database` if it does not exist; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return self.url(database)

    def _prepare_dirs(self) -> None:
        for folder in (self.root, self.data_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self.log_file.touch(exist_ok=True)
        if running_as_root():
            for path in (self.root, self.data_dir, self.socket_dir, self.log_file):
                shutil.chown(path, user=SUPERUSER, group=None)
            self._check_reachable_by_postgres_user()

    def _check_reachable_by_postgres_user(self) -> None:
        result = subprocess.run(
            ["runuser", "-u", SUPERUSER, "--", "test", "-w", str(self.socket_dir)],
            check=False,
            capture_output=True,
        )
        if result.returncode != 0:
            raise LocalPostgresError(
                f"the {SUPERUSER} user cannot reach {self.root}: every parent folder must be "
                "searchable by other users (chmod o+x), or set CANDLE_STATE_DIR elsewhere"
            )

    def _initdb(self) -> None:
        self._run(
            [
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(SOCKET_PORT),
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# candle-pipeline embedded server\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        executable = str(find_pg_bin() / command[0])
        full = [executable, *command[1:]]
        if running_as_root():
            full = ["runuser", "-u", SUPERUSER, "--", *full]
        result = subprocess.run(full, check=False, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise LocalPostgresError(
                f"{command[0]} failed ({result.returncode}): {result.stdout}{result.stderr}"
            )
        return result


def running_as_root() -> bool:
    return os.geteuid() == 0


@contextmanager
def throwaway_server(prefix: str, durable: bool = False) -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster in a new folder the postgres user can reach, removed afterwards:
    for tests (fsync off) and benchmarks (the embedded server's own settings)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(TEMPORARY_ROOT_MODE)
    server = LocalPostgres(root / "pg", durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
