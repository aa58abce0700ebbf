"""The warehouse resource: the one door to the PostgreSQL warehouse for every caller (assets,
checks, sensors, schedules, the CLI, `doctor`).

One SQLAlchemy engine and connection pool per process and database; one retry policy for a lost
connection around each call; units of work that commit everything one step writes in one
transaction; and the repository methods callers need (watch list, ticker-day state, calendar
corrections, coverage, corporate actions), each a call of the SQL functions of
`candle_pipeline.warehouse` on a connection of its own.
"""

import logging
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import TypeVar

import dagster as dg
import pandas as pd
import psycopg
import sqlalchemy as sa
import tenacity
from sqlalchemy.engine import make_url

from candle_pipeline.database_settings import ENV_DATABASE_URL, mask_url, validate_postgres_url
from candle_pipeline.domain.calendar_overrides import CalendarOverride
from candle_pipeline.domain.exchanges import SOURCE_PROVIDER, validate_mic
from candle_pipeline.domain.sessions import ExchangeDirectory
from candle_pipeline.warehouse import (
    calendar_overrides,
    corporate_actions,
    schema,
    summary,
    ticker_days,
    watchlist,
)
from candle_pipeline.warehouse.calendar_overrides import StoredOverride
from candle_pipeline.warehouse.watchlist import NewTicker, WatchedTicker

T = TypeVar("T")
# A warehouse transaction that loses its connection (server restart, network) is run again on a
# new connection, up to this many attempts, waiting 0.5, 1, 2, ... seconds (at most the maximum).
DB_RETRY_ATTEMPTS = 6
DB_RETRY_FIRST_WAIT_SECONDS = 0.5
DB_RETRY_MAX_WAIT_SECONDS = 8.0
LOGGER = logging.getLogger(__name__)

# A server that does not answer fails a connection attempt after this long; the retry policy
# then decides whether to try again.
CONNECT_TIMEOUT_SECONDS = 10
# The exchange of a ticker the watch list does not place elsewhere (CANDLE_DEFAULT_EXCHANGE), an
# ISO 10383 MIC: the New York Stock Exchange unless set.
DEFAULT_EXCHANGE = "XNYS"

_ENGINES: dict[tuple[str, int], sa.Engine] = {}
_TABLES_READY: set[str] = set()
_LOCK = threading.Lock()

Work = Callable[[psycopg.Connection], object]
# A database connection lost or refused: psycopg's error, or SQLAlchemy's wrapping of it (the pool
# raises that when it cannot open a new connection, say while the server restarts).
CONNECTION_ERRORS = (psycopg.OperationalError, sa.exc.OperationalError)
# The writes handed to `WarehouseResource.write` inside the open `unit_of_work`, if any.
_PENDING_WRITES: ContextVar[list[Work] | None] = ContextVar("candle_pending_writes", default=None)


def engine_for(
    database_url: str, connect_timeout_seconds: int = CONNECT_TIMEOUT_SECONDS
) -> sa.Engine:
    """The process's engine for `database_url` (psycopg 3 driver), created on first use."""
    key = (database_url, connect_timeout_seconds)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            validate_postgres_url(database_url, ENV_DATABASE_URL)
            url = make_url(database_url).set(drivername="postgresql+psycopg")
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                hide_parameters=True,
                connect_args={"connect_timeout": connect_timeout_seconds},
            )
            _ENGINES[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection this process holds and forget its engines: a process that
    works on many short-lived databases (the test suite makes one per test) would otherwise keep
    an idle connection to each until the server runs out of them."""
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


def ensure_tables(database_url: str) -> None:
    """Bring the warehouse schema to the current revision (`warehouse.schema.upgrade`), once per
    process and database."""
    with _LOCK:
        if database_url in _TABLES_READY:
            return
    schema.upgrade(database_url)
    with _LOCK:
        _TABLES_READY.add(database_url)


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse; the URL (with any password) comes from the environment.

    `default_exchange` is the exchange of a ticker the watch list does not place elsewhere;
    `extra_exchanges` are in use even before a watched ticker trades there (they have their
    after-close schedules and market timings).
    """

    database_url: str
    default_exchange: str = DEFAULT_EXCHANGE
    extra_exchanges: list[str] = []
    connect_timeout_seconds: int = CONNECT_TIMEOUT_SECONDS

    @property
    def engine(self) -> sa.Engine:
        return engine_for(self.database_url, self.connect_timeout_seconds)

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

    def ping(self) -> schema.Revisions:
        """The schema revisions of the warehouse, read on one connection attempt without retry
        (`doctor` reports an unreachable server at once)."""
        with self.engine.connect() as connection:
            return schema.revisions(connection)

    # --- the watch list --------------------------------------------------------------------

    def watchlist(self, active_only: bool = False) -> list[WatchedTicker]:
        """Every ticker ever watched, removed ones included (they count on their past days),
        or the active ones only."""
        return self.transaction(lambda connection: watchlist.entries(connection, active_only))

    def add_tickers(
        self,
        tickers: Sequence[NewTicker],
        default_history_start: date,
        accept: Callable[[list[WatchedTicker]], None] | None = None,
    ) -> tuple[list[str], list[WatchedTicker]]:
        """Add or re-activate `tickers` (those without an exchange on `default_exchange`) in one
        transaction; their canonical spellings and the whole watch list after it.

        `accept(watch list)` runs before the commit: an exception from it keeps nothing.
        """

        def add(connection: sa.Connection) -> tuple[list[str], list[WatchedTicker]]:
            added = watchlist.add(connection, tickers, self.default_exchange, default_history_start)
            watched = watchlist.entries(connection)
            if accept is not None:
                accept(watched)
            return added, watched

        return self.transaction(add)

    def remove_tickers(self, tickers: Sequence[str], on: date) -> list[str]:
        """Stop watching `tickers` from `on`; those that were active."""
        return self.transaction(lambda connection: watchlist.deactivate(connection, tickers, on))

    def exchanges(self) -> ExchangeDirectory:
        """Every watched ticker's exchange; others trade on `default_exchange`."""
        return self.transaction(
            lambda connection: watchlist.exchange_directory(connection, self.default_exchange)
        )

    def exchanges_in_use(self) -> list[str]:
        """The default, the configured extras and every exchange a listed ticker trades on."""
        listed = {entry.exchange for entry in self.watchlist()}
        codes = {self.default_exchange, *self.extra_exchanges, *listed}
        return sorted(validate_mic(code) for code in codes)

    def record_provider_exchanges(self, provider_exchanges: Mapping[str, str]) -> None:
        """Remember the provider's exchange names; new_tickers_sensor acts on them."""
        self.transaction(
            lambda connection: watchlist.record_provider_exchanges(connection, provider_exchanges)
        )

    def correct_exchanges(self) -> dict[str, tuple[str, str]]:
        """Move defaulted tickers to the exchange their provider names; returns the moves."""

        def correct(connection: sa.Connection) -> dict[str, tuple[str, str]]:
            corrections = watchlist.exchange_corrections(connection)
            for ticker, (_, mic) in corrections.items():
                watchlist.set_exchange(connection, ticker, mic, SOURCE_PROVIDER)
            return corrections

        return self.transaction(correct)

    # --- ticker-day state ------------------------------------------------------------------

    def ticker_day_states(self, days: Sequence[date]) -> pd.DataFrame:
        """The stored state of every ticker on `days` (STATE_COLUMNS)."""
        return self.run(lambda conn: ticker_days.load_states(conn, days))

    def due_retries(self, now: datetime) -> pd.DataFrame:
        """Failed or retry-later ticker-days whose `retry_after` has passed."""
        return self.run(lambda conn: ticker_days.due_retries(conn, now))

    def ticker_day_statuses(
        self, tickers: Sequence[str] | None, start: date, end: date
    ) -> pd.DataFrame:
        """(trade_date, ticker, status, last_error) of the stored ticker-days between `start`
        and `end`, of `tickers` or every one."""
        return self.run(lambda conn: ticker_days.statuses(conn, tickers, start, end))

    # --- calendar corrections --------------------------------------------------------------

    def calendar_overrides(
        self,
        mics: Collection[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[StoredOverride]:
        """The corrections in force, of `mics` (all when None) between `start` and `end`."""
        return self.transaction(
            lambda connection: calendar_overrides.in_force(connection, mics, start, end)
        )

    def calendar_overrides_frame(
        self, mics: Collection[str], start: date, end: date
    ) -> pd.DataFrame:
        """The corrections of `mics` between `start` and `end`, as `sessions.market_timings`
        takes them."""
        return self.transaction(
            lambda connection: calendar_overrides.in_force_frame(connection, mics, start, end)
        )

    def calendar_overrides_by_ids(self, ids: Collection[int]) -> list[StoredOverride]:
        """The corrections with these row ids, removed or not."""
        return self.transaction(lambda connection: calendar_overrides.by_ids(connection, ids))

    def record_calendar_override(
        self, override: CalendarOverride, by: str, at: datetime
    ) -> StoredOverride:
        """Store `override` if it contradicts nothing in force (else `OverrideError`)."""
        return self.transaction(
            lambda connection: calendar_overrides.record(connection, override, by, at)
        )

    def remove_calendar_overrides(self, mic: str, day: date, by: str, at: datetime) -> list[int]:
        """Remove every correction of `mic` on `day`; the ids removed."""
        return self.transaction(
            lambda connection: calendar_overrides.remove(connection, mic, day, by, at)
        )

    def calendar_override_listing(self, mic: str | None = None) -> pd.DataFrame:
        """The corrections in force (of `mic`), for `calendar list`."""
        return self.transaction(lambda connection: calendar_overrides.listing(connection, mic))

    def stored_sessions(self, days: Collection[date]) -> set[tuple[str, date]]:
        """The (mic, day) pairs of `days` whose market timings are stored."""
        return self.transaction(
            lambda connection: calendar_overrides.stored_sessions(connection, days)
        )

    # --- corporate actions and totals ------------------------------------------------------

    def adjustment_factors(self, tickers: list[str]) -> pd.DataFrame:
        """The stored adjustment factors of `tickers`."""
        return self.run(lambda conn: corporate_actions.load_factors(conn, tickers))

    def table_totals(self) -> dict[str, int]:
        """The row count of every warehouse table."""
        return self.transaction(summary.table_totals)

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
