"""The warehouse resource: one SQLAlchemy engine and connection pool per process and database,
and units of work that commit everything one step writes in one transaction."""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import dagster as dg
import psycopg
import sqlalchemy as sa
import tenacity
from sqlalchemy.engine import make_url

from candle_pipeline.settings import ENV_DATABASE_URL, mask_url, validate_postgres_url
from candle_pipeline.warehouse.schema import upgrade

T = TypeVar("T")
# A warehouse transaction that loses its connection (server restart, network) is run again on a
# new connection, up to this many attempts, waiting 0.5, 1, 2, ... seconds (at most the maximum).
DB_RETRY_ATTEMPTS = 6
DB_RETRY_FIRST_WAIT_SECONDS = 0.5
DB_RETRY_MAX_WAIT_SECONDS = 8.0
LOGGER = logging.getLogger(__name__)

_ENGINES: dict[str, sa.Engine] = {}
_TABLES_READY: set[str] = set()
_LOCK = threading.Lock()

Work = Callable[[psycopg.Connection], object]
# A database connection lost or refused: psycopg's error, or SQLAlchemy's wrapping of it (the pool
# raises that when it cannot open a new connection, say while the server restarts).
CONNECTION_ERRORS = (psycopg.OperationalError, sa.exc.OperationalError)
# The writes handed to `WarehouseResource.write` inside the open `unit_of_work`, if any.
_PENDING_WRITES: ContextVar[list[Work] | None] = ContextVar("candle_pending_writes", default=None)


def engine_for(database_url: str) -> sa.Engine:
    """The process's engine for `database_url` (psycopg 3 driver), created on first use."""
    with _LOCK:
        engine = _ENGINES.get(database_url)
        if engine is None:
            validate_postgres_url(database_url, ENV_DATABASE_URL)
            url = make_url(database_url).set(drivername="postgresql+psycopg")
            engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
            _ENGINES[database_url] = engine
        return engine


def ensure_tables(database_url: str) -> None:
    """Bring the warehouse schema to the current revision (`warehouse.schema.upgrade`), once per
    process and database."""
    with _LOCK:
        if database_url in _TABLES_READY:
            return
    upgrade(database_url)
    with _LOCK:
        _TABLES_READY.add(database_url)


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse; the URL (with any password) comes from the environment."""

    database_url: str

    @property
    def engine(self) -> sa.Engine:
        return engine_for(self.database_url)

    @property
    def display_url(self) -> str:
        return mask_url(self.database_url)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        ensure_tables(self.database_url)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled psycopg connection, for COPY and other driver-level work.

        A connection that broke while in use is thrown away, not returned to the pool.
        """
        pooled = self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except psycopg.OperationalError:
            pooled.invalidate()
            raise
        finally:
            pooled.close()

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """Every `write` made inside the block is committed together when the block ends: one
        transaction, retried as a whole on a new connection. An exception in the block (a killed
        step) writes nothing, so a ticker-day is never left half written across tables."""
        pending: list[Work] = []
        token = _PENDING_WRITES.set(pending)
        try:
            yield
        finally:
            _PENDING_WRITES.reset(token)
        if pending:
            self.run(lambda conn: [work(conn) for work in pending])

    def write(self, work: Work) -> None:
        """`work(connection)` in the open unit of work, else at once in its own transaction."""
        pending = _PENDING_WRITES.get()
        if pending is None:
            self.run(work)
        else:
            pending.append(work)

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """`work(connection)` in one transaction, retried on a new connection when the database
        connection is lost.

        Running it again is safe because nothing of a failed attempt was committed: a server
        restart or a dropped connection delays a write instead of failing the run.
        """
        return _retrying()(self._on_new_connection, work)

    def transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """`work(connection)` on a SQLAlchemy connection in one transaction, retried on a new
        connection like `run`."""
        return _retrying()(self._in_transaction, work)

    def _on_new_connection(self, work: Callable[[psycopg.Connection], T]) -> T:
        with self.connection() as conn, conn.transaction():
            return work(conn)

    def _in_transaction(self, work: Callable[[sa.Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)


def _retrying() -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(CONNECTION_ERRORS),
        stop=tenacity.stop_after_attempt(DB_RETRY_ATTEMPTS),
        wait=tenacity.wait_exponential(
            multiplier=DB_RETRY_FIRST_WAIT_SECONDS, max=DB_RETRY_MAX_WAIT_SECONDS
        ),
        before_sleep=_log_retry,
        reraise=True,
    )


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    reason = str(error).strip().splitlines()[0] if error else "unknown"
    LOGGER.warning(
        "database connection lost (%s); retrying in %.1f s (attempt %d of %d)",
        reason,
        state.next_action.sleep if state.next_action else 0.0,
        state.attempt_number + 1,
        DB_RETRY_ATTEMPTS,
    )
