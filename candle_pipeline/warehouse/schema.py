"""The warehouse schema's revision: Alembic migrations (in `migrations/`) bring any warehouse to
the schema `tables.py` describes, in place and keeping its rows.

`upgrade` is the only way tables are made or changed. It runs every pending migration in one
transaction under an advisory lock, so concurrent processes take turns and a failed migration
changes nothing. A warehouse made before migrations existed (the previous release's tables, no
version table) is first stamped at the first-release revision. The version table lives in the
warehouse schema.

A new migration: `alembic.command.revision(alembic_config(), "what it does", rev_id=...)` writes
a file into `migrations/versions/` from `script.py.mako`; describe the change there with frozen
table definitions (never `tables.py`'s metadata), then update `tables.py` to match. The test of
this module fails until both agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from candle_pipeline.database_settings import (
    ENV_DATABASE_URL,
    validate_postgres_url,
    warehouse_schema,
)

# The migrations folder inside this package (Alembic's `package:folder` form).
MIGRATIONS = f"{__package__}:migrations"
# What env.py and the migrations read from `Config.attributes`.
CONNECTION_ATTRIBUTE = "connection"
SCHEMA_ATTRIBUTE = "warehouse_schema"
# The revision whose schema the previous release (before migrations) created.
FIRST_RELEASE = "0001_first_release"
PREVIOUS_RELEASE_TABLES = (
    "candles",
    "corporate_actions",
    "market_timings",
    "provider_rate_limits",
    "quality_reports",
    "raw_quotes",
    "validated_quotes",
    "watchlist",
)
# A fixed key so that concurrent processes changing the schema take turns.
DDL_LOCK_KEY = 7_310_001


class SchemaUpgradeError(RuntimeError):
    """The warehouse cannot be brought to the current schema; the message says why."""


@dataclass(frozen=True)
class Revisions:
    """The revision(s) a warehouse is at (empty: no version table) and the ones it should be at."""

    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.head)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Current revisions this release has no migration of (a newer release made them)."""
        known = {script.revision for script in _scripts().walk_revisions()}
        return tuple(revision for revision in self.current if revision not in known)


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did: the revisions before and after, and whether it stamped a warehouse
    made before migrations."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    stamped: bool = False


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, in code: the packaged migrations and, to run them, the connection
    (in its transaction) and the warehouse schema."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        config.attributes[CONNECTION_ATTRIBUTE] = connection
        config.attributes[SCHEMA_ATTRIBUTE] = warehouse_schema()
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> tuple[str, ...]:
    """The revision(s) of the newest schema this release knows."""
    return tuple(_scripts().get_heads())


def current_revisions(connection: sa.Connection) -> tuple[str, ...]:
    """The revision(s) the warehouse is at; empty when it has no version table."""
    context = MigrationContext.configure(
        connection, opts={"version_table_schema": warehouse_schema()}
    )
    return tuple(context.get_current_heads())


def revisions(connection: sa.Connection) -> Revisions:
    return Revisions(current=current_revisions(connection), head=head_revisions())


def upgrade(database_url: str) -> Upgrade:
    """Bring the warehouse of `database_url` to the head revision.

    At head it costs one check of the version table and takes no lock. Otherwise, under the
    advisory lock and in one transaction: a warehouse made before migrations is stamped at the
    first release, then every pending migration runs. Raises SchemaUpgradeError when that is
    impossible or a migration fails (nothing is changed then).
    """
    with _engine(database_url) as engine:
        with engine.connect() as connection:
            found = revisions(connection)
        if found.at_head:
            return Upgrade(before=found.current, after=found.current)
        with engine.begin() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(DDL_LOCK_KEY)))
            return _upgrade_locked(connection)


def _upgrade_locked(connection: sa.Connection) -> Upgrade:
    found = revisions(connection)
    before, head = found.current, found.head
    if found.at_head:
        return Upgrade(before=before, after=before)
    if found.unknown:
        raise SchemaUpgradeError(
            f"the warehouse is at revision {describe(found.unknown)}, which this release does "
            "not know: a newer release upgraded it; use that release"
        )
    config = alembic_config(connection)
    stamped = not before and _made_before_migrations(connection)
    if stamped:
        command.stamp(config, FIRST_RELEASE)
    try:
        command.upgrade(config, "heads")
    except sa.exc.OperationalError:
        # A lost connection: the callers say so as such.
        raise
    except sa.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0]
        raise SchemaUpgradeError(
            f"upgrading the warehouse from {describe(before)} to {describe(head)} failed and "
            f"changed nothing: {reason}"
        ) from error
    return Upgrade(before=before, after=current_revisions(connection), stamped=stamped)


def _made_before_migrations(connection: sa.Connection) -> bool:
    """True when the previous release's tables are there (and no version table); refuses a
    warehouse holding only some of them."""
    schema = warehouse_schema()
    existing = set(sa.inspect(connection).get_table_names(schema=schema))
    found = [name for name in PREVIOUS_RELEASE_TABLES if name in existing]
    if not found:
        return False
    missing = [name for name in PREVIOUS_RELEASE_TABLES if name not in existing]
    if missing:
        raise SchemaUpgradeError(
            f"schema {schema} has no version table and holds {', '.join(found)} but not "
            f"{', '.join(missing)}: it is not a complete warehouse of the previous release; let "
            "that release complete it (any of its commands does) or use a fresh database"
        )
    return True


def describe(revisions: Sequence[str]) -> str:
    """Revisions for people: `0002_day_partitions`, or `none`."""
    return ", ".join(revisions) or "none"


@contextmanager
def _engine(database_url: str) -> Iterator[sa.Engine]:
    """A connection of its own for the upgrade (psycopg 3 driver), closed afterwards."""
    validate_postgres_url(database_url, ENV_DATABASE_URL)
    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        yield engine
    finally:
        engine.dispose()
