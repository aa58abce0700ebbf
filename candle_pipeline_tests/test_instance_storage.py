"""The instance storage shipped in dagster.yaml, against a real PostgreSQL and real runs.

It overrides private methods of dagster-postgres; these tests fail if Dagster changes them.
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from candle_pipeline.instance_storage import (
    EVENT_BATCH_SIZE_ENV,
    CandleComputeLogManager,
    CandleRunCoordinator,
    PooledEventLogStorage,
    PooledRunStorage,
    PooledScheduleStorage,
)
from candle_pipeline.local_env import instance_environment
from candle_pipeline.local_postgres import LocalPostgres, throwaway_server
from candle_pipeline.settings import PROJECT_DIR, get_operations_settings
from candle_pipeline_tests.backfill_driver import shipped_storage
from candle_pipeline_tests.conftest import create_database

PARTITIONS = dg.StaticPartitionsDefinition([f"p{index:03d}" for index in range(120)])
KEYS = PARTITIONS.get_partition_keys()


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def counted(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"partitions": len(context.partition_keys)})


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def broken(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError("the provider is down")


def whole_range() -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: KEYS[0], ASSET_PARTITION_RANGE_END_TAG: KEYS[-1]}


@pytest.fixture
def shipped_instance(pg_server: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An instance loaded from the project's own dagster.yaml, as `candle-pipeline` loads it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    exported = instance_environment(create_database(pg_server, "dagster"), home)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(EVENT_BATCH_SIZE_ENV, raising=False)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_dagster_yaml_selects_the_pooled_storages_and_event_batching(shipped_instance) -> None:
    assert isinstance(shipped_instance.event_log_storage, PooledEventLogStorage)
    assert isinstance(shipped_instance.run_storage, PooledRunStorage)
    assert isinstance(shipped_instance.schedule_storage, PooledScheduleStorage)
    assert os.environ[EVENT_BATCH_SIZE_ENV] == "1000"


def test_a_run_of_many_partitions_reuses_a_few_connections(shipped_instance) -> None:
    opened = []
    storages = (
        shipped_instance.event_log_storage,
        shipped_instance.run_storage,
        shipped_instance.schedule_storage,
    )
    for storage in storages:
        sa.event.listen(storage._engine, "connect", lambda *_: opened.append(1))
    result = dg.materialize([counted], instance=shipped_instance, tags=whole_range())
    assert result.success
    events = shipped_instance.get_records_for_run(result.run_id, limit=10_000).records
    assert len(events) > 2 * len(KEYS), "a planned and a materialisation event per partition"
    assert len(opened) <= len(storages) * 2, f"{len(opened)} connections for {len(events)} events"


def test_every_partition_gets_its_planned_and_materialisation_events(shipped_instance) -> None:
    result = dg.materialize([counted], instance=shipped_instance, tags=whole_range())
    planned = shipped_instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=10_000
    ).records
    assert sorted(record.event_log_entry.dagster_event.partition for record in planned) == KEYS
    materialized = shipped_instance.fetch_materializations(counted.key, limit=10_000).records
    assert sorted(record.partition_key for record in materialized) == KEYS
    assert {r.asset_materialization.metadata["partitions"].value for r in materialized} == {120}
    [record] = shipped_instance.get_asset_records([counted.key])
    entry = record.asset_entry
    assert entry.last_materialization_record.storage_id == max(r.storage_id for r in materialized)
    assert entry.last_run_id == result.run_id
    latest_planned = shipped_instance.get_latest_planned_materialization_info(counted.key)
    assert latest_planned.storage_id == max(record.storage_id for record in planned)
    assert latest_planned.run_id == result.run_id


def test_partitions_of_a_failed_run_are_reported_failed(shipped_instance) -> None:
    result = dg.materialize(
        [broken], instance=shipped_instance, tags=whole_range(), raise_on_error=False
    )
    assert not result.success
    attempts = shipped_instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(  # noqa: E501
        broken.key
    )
    assert sorted(attempts) == KEYS
    assert {run_id for run_id, _ in attempts.values()} == {result.run_id}


def test_settings_the_storage_would_ignore_are_refused(shipped_instance, tmp_path: Path) -> None:
    home = tmp_path / "refusing_home"
    home.mkdir()
    shipped = (PROJECT_DIR / "dagster.yaml").read_text()
    marker = "      event_batch_size: 1000\n"
    assert marker in shipped
    (home / "dagster.yaml").write_text(
        shipped.replace(marker, marker + "      should_autocreate_tables: false\n")
    )
    with pytest.raises(DagsterInvalidConfigError, match="should_autocreate_tables"):
        dg.DagsterInstance.from_config(str(home))


def test_dagster_commands_open_the_shipped_instance_with_only_the_warehouse_url(
    pg_server: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster dev`, `dagster-webserver` or `dagster-daemon run` started by hand, with
    DAGSTER_HOME holding the project's dagster.yaml and CANDLE_DATABASE_URL set: the instance's
    database, run queue and compute logs get the project's defaults."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    for name in (
        "CANDLE_DAGSTER_DATABASE_URL",
        "CANDLE_MAX_CONCURRENT_RUNS",
        "CANDLE_COMPUTE_LOG_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CANDLE_DATABASE_URL", create_database(pg_server, "shared"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    get_operations_settings.cache_clear()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, CandleRunCoordinator)
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 4
        assert isinstance(instance.compute_log_manager, CandleComputeLogManager)
        step_log = instance.compute_log_manager.get_captured_local_path(["run", "step"], "out")
        assert Path(step_log).is_relative_to(home / "compute_logs")
        assert instance.get_runs() == []

    monkeypatch.delenv("CANDLE_DATABASE_URL")
    with pytest.raises(ValueError, match="the Dagster instance has no database: set CANDLE_DAG"):
        dg.DagsterInstance.from_config(str(home))


def test_the_webservers_storage_survives_a_database_restart() -> None:
    """The webserver holds one connection; after PostgreSQL restarts, the next query reconnects
    instead of failing with `server closed the connection unexpectedly`."""
    with throwaway_server(prefix="candle-restart-") as server:
        url = create_database(server, "dagster")
        with dg.instance_for_test(overrides={"storage": shipped_storage(url)}) as instance:
            instance.run_storage.optimize_for_webserver(
                statement_timeout=5000, pool_recycle=3600, max_overflow=20
            )
            assert instance.get_runs() == []
            server.stop()
            server.start()
            assert instance.get_runs() == [], "the held connection was replaced"
