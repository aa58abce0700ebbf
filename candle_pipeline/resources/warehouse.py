"""The warehouse resource: one SQLAlchemy engine and connection pool per process and database."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from candle_pipeline.settings import ENV_DATABASE_URL, mask_url, validate_postgres_url
from candle_pipeline.warehouse.tables import create_tables

_ENGINES: dict[str, sa.Engine] = {}
_TABLES_READY: set[str] = set()
_LOCK = threading.Lock()


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
    """Create the warehouse tables once per process and database."""
    with _LOCK:
        if database_url in _TABLES_READY:
            return
    with engine_for(database_url).begin() as connection:
        create_tables(connection)
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
        """A pooled psycopg connection, for COPY and other driver-level work."""
        pooled = self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        finally:
            pooled.close()
