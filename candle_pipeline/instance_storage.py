"""The Dagster instance storage of candle-pipeline: dagster-postgres, made cheap per event.

dagster-postgres opens a new PostgreSQL connection for every statement (its engines use
`NullPool`, dagster-io/dagster#20325) and makes its pool settings unconfigurable
(dagster-io/dagster#33935). A single-run backfill of N ticker-days writes N "materialisation
planned" events and N materialisations per asset, each with a few statements: connection set-up
dominates the cost of a large backfill. `CandleInstanceStorage` is dagster-postgres with three
changes:

- **Pooled connections.** Each storage (runs, events, schedules) keeps up to `pool_size` idle
  connections (`QueuePool`, pre-pinged, recycled after `pool_recycle_seconds`). `max_overflow`
  defaults to -1: a burst opens extra connections, as NullPool would, and never waits for one
  (the failure mitodl/ol-infrastructure#5497 hit with a bounded pool).
- **Batched event writes.** Dagster writes the materialisations of a multi-partition output in
  batches when `DAGSTER_EVENT_BATCH_SIZE` is set; `event_batch_size` sets it for every process
  that opens this instance (an explicit environment value wins).
- **Batched planned events, cheaper batches.** dagster-postgres writes "planned" events one by
  one, and compiles each batch of materialisations as one statement with thousands of literals.
  Here a batch of either is one executemany INSERT and one asset-record update per asset. Every
  partition keeps its own planned event, so failed and in-progress partitions still show in the
  UI (unlike DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS).

The URL is `postgres_url` of the configuration, else CANDLE_DAGSTER_DATABASE_URL, else
CANDLE_DATABASE_URL: Dagster's `env:` has no default, and `dagster dev`, `dagster-webserver` and
`dagster-daemon run` open this instance without our command line. For the same reason the run
queue (`CandleRunCoordinator`) and the compute logs (`CandleComputeLogManager`) read
CANDLE_MAX_CONCURRENT_RUNS and CANDLE_COMPUTE_LOG_DIR themselves, with the project's defaults.

Select it in dagster.yaml with `storage: custom: {module: candle_pipeline.instance_storage,
class: CandleInstanceStorage, config: {postgres_url: ...}}`. It overrides private methods of
dagster-postgres 0.29 (pinned); `candle_pipeline_tests/test_instance_storage.py` fails if they
change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from dagster import (
    DagsterEventType,
    EventLogEntry,
    Field,
    IntSource,
    QueuedRunCoordinator,
    StringSource,
)
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, pg_url_from_config, set_pg_statement_timeout

from candle_pipeline.dagster_internals import (
    ConfigurableClass,
    ConfigurableClassData,
    DagsterStorage,
    LocalComputeLogManager,
    SqlEventLogStorageTable,
    UserConfigSchema,
    pg_config,
)
from candle_pipeline.settings import (
    ENV_DAGSTER_DATABASE_URL,
    ENV_DAGSTER_HOME,
    ENV_DATABASE_URL,
    get_operations_settings,
)

EVENT_BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_POOL_SIZE = 1
UNBOUNDED_OVERFLOW = -1
DEFAULT_POOL_RECYCLE_SECONDS = 3600
# Events Dagster hands the storage at once (DAGSTER_EVENT_BATCH_SIZE): one INSERT statement,
# which SQLAlchemy sends as multi-row VALUES pages.
DEFAULT_EVENT_BATCH_SIZE = 1000
COMPUTE_LOG_DIRNAME = "compute_logs"
# dagster-postgres settings this storage does not pass on (token-based logins, creating no tables):
# left out of its schema so that setting them is a configuration error, not silently ignored.
UNSUPPORTED_PG_CONFIG = frozenset({"auth_provider", "should_autocreate_tables"})
# Events stored here by one INSERT per batch; the asset record keeps the last of each asset.
BULK_EVENT_TYPES = frozenset(
    {DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_MATERIALIZATION}
)


@dataclass(frozen=True)
class PoolSettings:
    pool_size: int = DEFAULT_POOL_SIZE
    max_overflow: int = UNBOUNDED_OVERFLOW
    pool_recycle_seconds: int = DEFAULT_POOL_RECYCLE_SECONDS

    def engine(self, postgres_url: str) -> sa.Engine:
        """An AUTOCOMMIT engine like dagster-postgres's, but keeping connections."""
        return create_pg_engine(
            postgres_url,
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.QueuePool,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            pool_recycle=self.pool_recycle_seconds,
            pool_pre_ping=True,
        )


class _PooledEngine:
    """A dagster-postgres storage whose NullPool engine is replaced by a pooled one."""

    _engine: sa.Engine

    def __init__(self, postgres_url: str, pool: PoolSettings) -> None:
        super().__init__(postgres_url)  # type: ignore[call-arg]  # the dagster-postgres storage
        self._engine.dispose()
        self._engine = pool.engine(postgres_url)

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]  # the dagster-postgres storage
        self._engine.dispose()

    def optimize_for_webserver(
        self, statement_timeout: int, pool_recycle: int, max_overflow: int
    ) -> None:
        """dagster-postgres's engine for the webserver (one held connection, a statement
        timeout), pre-pinged: after a database restart the held connection is replaced before a
        query fails on it. The pooled engine it replaces is closed, not leaked."""
        pooled = self._engine
        options = pooled.url.query.get("options")
        self._engine = create_pg_engine(
            self.postgres_url,  # type: ignore[attr-defined]  # the dagster-postgres storage
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            pool_recycle=pool_recycle,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            **({"connect_args": {"options": options}} if options else {}),
        )
        sa.event.listen(
            self._engine,
            "connect",
            lambda connection, _: set_pg_statement_timeout(connection, statement_timeout),
        )
        pooled.dispose()


class PooledRunStorage(_PooledEngine, PostgresRunStorage):
    """Runs, pooled."""


class PooledScheduleStorage(_PooledEngine, PostgresScheduleStorage):
    """Schedules and sensors' ticks, pooled."""


class PooledEventLogStorage(_PooledEngine, PostgresEventLogStorage):
    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Planned events and materialisations of a batch in one INSERT; other events as
        dagster-postgres stores them."""
        bulk = [event for event in events if _bulk_insertable(event)]
        others = [event for event in events if not _bulk_insertable(event)]
        if bulk:
            self._insert_asset_events(bulk)
        if others:
            super().store_event_batch(others)

    def _insert_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        """What dagster-postgres does for a batch of materialisations, as one executemany
        INSERT (compiled once, sent as multi-row VALUES) instead of a statement with thousands
        of literals compiled per batch; and for planned events too."""
        rows = [self._event_to_row(event) for event in events]
        statement = SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
        )
        with self._connect() as conn:
            event_ids = [int(row[0]) for row in conn.execute(statement, rows)]
        last_by_asset: dict[object, tuple[EventLogEntry, int]] = {}
        for event, event_id in zip(events, event_ids, strict=True):
            last_by_asset[(event.get_dagster_event().asset_key, event.dagster_event_type)] = (
                event,
                event_id,
            )
        with self.index_transaction() as conn:
            self._store_asset_event_tags(conn, events, event_ids)
            for event, event_id in last_by_asset.values():
                self._store_asset_event(conn, event, event_id)


def _instance_url(config_value: Mapping[str, Any]) -> str:
    if config_value.get("postgres_url") or config_value.get("postgres_db"):
        return pg_url_from_config(config_value)
    for name in (ENV_DAGSTER_DATABASE_URL, ENV_DATABASE_URL):
        if url := os.environ.get(name, "").strip():
            return url
    raise ValueError(
        f"the Dagster instance has no database: set {ENV_DAGSTER_DATABASE_URL} or "
        f"{ENV_DATABASE_URL}, or start it with `candle-pipeline ui`"
    )


def _bulk_insertable(event: EventLogEntry) -> bool:
    dagster_event = event.dagster_event
    return (
        dagster_event is not None
        and dagster_event.event_type in BULK_EVENT_TYPES
        and dagster_event.asset_key is not None
    )


class CandleInstanceStorage(DagsterStorage, ConfigurableClass):
    """dagster-postgres run, event and schedule storage with pooled connections and batching."""

    def __init__(
        self,
        postgres_url: str,
        pool: PoolSettings,
        event_batch_size: int = DEFAULT_EVENT_BATCH_SIZE,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._inst_data = inst_data
        if event_batch_size > 0:
            os.environ.setdefault(EVENT_BATCH_SIZE_ENV, str(event_batch_size))
        self._run_storage = PooledRunStorage(postgres_url, pool)
        self._event_log_storage = PooledEventLogStorage(postgres_url, pool)
        self._schedule_storage = PooledScheduleStorage(postgres_url, pool)
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            **{
                key: field for key, field in pg_config().items() if key not in UNSUPPORTED_PG_CONFIG
            },
            "pool_size": Field(IntSource, is_required=False, default_value=DEFAULT_POOL_SIZE),
            "max_overflow": Field(IntSource, is_required=False, default_value=UNBOUNDED_OVERFLOW),
            "pool_recycle_seconds": Field(
                IntSource, is_required=False, default_value=DEFAULT_POOL_RECYCLE_SECONDS
            ),
            "event_batch_size": Field(
                IntSource, is_required=False, default_value=DEFAULT_EVENT_BATCH_SIZE
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> CandleInstanceStorage:
        return cls(
            postgres_url=_instance_url(config_value),
            pool=PoolSettings(
                pool_size=config_value["pool_size"],
                max_overflow=config_value["max_overflow"],
                pool_recycle_seconds=config_value["pool_recycle_seconds"],
            ),
            event_batch_size=config_value["event_batch_size"],
            inst_data=inst_data,
        )

    @property
    def event_log_storage(self) -> PooledEventLogStorage:
        return self._event_log_storage

    @property
    def run_storage(self) -> PooledRunStorage:
        return self._run_storage

    @property
    def schedule_storage(self) -> PooledScheduleStorage:
        return self._schedule_storage


class CandleRunCoordinator(QueuedRunCoordinator):
    """Dagster's run queue; `max_concurrent_runs` defaults to CANDLE_MAX_CONCURRENT_RUNS."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        if config_value.get("max_concurrent_runs") is None:
            limit = get_operations_settings().max_concurrent_runs
            config_value = {**config_value, "max_concurrent_runs": limit}
        return super().from_config_value(inst_data, config_value)


class CandleComputeLogManager(LocalComputeLogManager):
    """Step stdout/stderr on local disk, under CANDLE_COMPUTE_LOG_DIR, else
    $DAGSTER_HOME/compute_logs."""

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {**super().config_type(), "base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> LocalComputeLogManager:
        base_dir = config_value.get("base_dir") or str(default_compute_log_dir())
        return cls(inst_data=inst_data, **{**config_value, "base_dir": base_dir})


def default_compute_log_dir() -> Path:
    """CANDLE_COMPUTE_LOG_DIR, else compute_logs in the Dagster home."""
    configured = get_operations_settings().compute_log_dir
    if configured is not None:
        return configured
    return Path(os.environ.get(ENV_DAGSTER_HOME) or Path.cwd()) / COMPUTE_LOG_DIRNAME
