"""`candle-pipeline doctor` and `pools apply` on a healthy and on broken setups (real Postgres)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    ScheduleInstigatorData,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from candle_pipeline.cli import EXIT_FAILED, main
from candle_pipeline.resources.warehouse import ensure_tables
from candle_pipeline.sensors.settings import settings_sensor
from candle_pipeline.warehouse import schema
from candle_pipeline_tests.conftest import clear_settings

pytestmark = pytest.mark.integration
HEAD = schema.describe(schema.head_revisions())
SCHEDULE_CRON = "30 16 * * 1-5"


def repository_origin() -> RemoteRepositoryOrigin:
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="candle_pipeline.definitions"),
        location_name="candle_pipeline",
    )
    return RemoteRepositoryOrigin(location, "__repository__")


def job_origin(job_name: str) -> RemoteJobOrigin:
    return RemoteJobOrigin(repository_origin(), job_name)


def schedule_state(name: str, status: InstigatorStatus) -> InstigatorState:
    origin = RemoteInstigatorOrigin(repository_origin(), name)
    return InstigatorState(
        origin, InstigatorType.SCHEDULE, status, ScheduleInstigatorData(SCHEDULE_CRON)
    )


def backfill(backfill_id: str, status: BulkActionStatus) -> PartitionBackfill:
    return PartitionBackfill(
        backfill_id,
        status=status,
        from_failure=False,
        tags={},
        backfill_timestamp=0.0,
        asset_selection=[dg.AssetKey("raw_quotes")],
        serialized_asset_backfill_data="{}",
    )


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out


def lines_with(output: str, state: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(state)]


def test_healthy_setup(external_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    ensure_tables(external_env["CANDLE_DATABASE_URL"])
    assert main(["pools", "apply"]) == 0
    assert "pool market_api: at most 1 at once (was unlimited)" in capsys.readouterr().out
    assert main(["pools", "apply"]) == 0
    assert "pool market_api: at most 1 at once (unchanged)" in capsys.readouterr().out

    code, out = doctor(capsys)
    assert code == 0, out
    assert lines_with(out, "PROBLEM") == []
    assert f"schema market at revision {HEAD} (head)" in out
    assert "runs queue, at most 4 at once" in out
    assert "pool market_api" in out and "at most 1 at once" in out
    assert "no dagster-daemon is running; nothing waits for one now" in out
    assert "after-close schedules for XNYS" in out
    assert out.rstrip().endswith("no problem found")


def test_the_sp500_since_2000_is_a_healthy_deployment(
    external_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Day partitions do not grow with the watch list: 503 tickers from the first partition
    (2000-01-01) is nothing to warn about."""
    assert main(["pools", "apply"]) == 0
    assert main(["tickers", "import-sp500", "--history-start", "2000-01-03"]) == 0
    imported = capsys.readouterr().out
    assert "watching 503 ticker(s)" in imported
    assert "warning" not in imported.lower()
    code, out = doctor(capsys)
    assert code == 0, out
    assert lines_with(out, "PROBLEM") == []
    assert "warning" not in out.lower()
    assert out.rstrip().endswith("no problem found")


def test_a_watched_exchange_without_schedule_is_named(
    external_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from candle_pipeline.resources.warehouse import engine_for  # noqa: PLC0415
    from candle_pipeline.warehouse import watchlist  # noqa: PLC0415

    ensure_tables(external_env["CANDLE_DATABASE_URL"])
    with engine_for(external_env["CANDLE_DATABASE_URL"]).begin() as connection:
        watchlist.add(connection, [watchlist.NewTicker("SHOP.TO")], "XNYS", date(2024, 1, 2))
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    [line] = [row for row in lines_with(out, "PROBLEM") if "schedules" in row]
    assert "XTSE, which has no after-close schedule" in line
    assert "CANDLE_EXCHANGES=XTSE" in line


def test_broken_setup_says_what_is_wrong(
    external_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No tables, no pool limit, and a queued run that no daemon will ever start.
    with dg.DagsterInstance.get() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="market_data_job",
                status=dg.DagsterRunStatus.QUEUED,
                remote_job_origin=job_origin("market_data_job"),
            )
        )
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    problems = "\n".join(lines_with(out, "PROBLEM"))
    assert "schema market has no revision (a new database" in problems
    assert "run `candle-pipeline db upgrade`" in problems
    assert "pool market_api (candles, raw_quotes, validated_quotes) has no limit" in problems
    assert "`candle-pipeline pools apply`" in problems
    assert "no recent heartbeat from" in problems
    assert "waiting for it: 1 queued run(s)" in problems
    assert "3 problem(s) found" in out

    # A pool limit that disagrees with the settings.
    assert main(["pools", "apply"]) == 0
    monkeypatch.setenv("CANDLE_MARKET_API_POOL_LIMIT", "3")
    _, out = doctor(capsys)
    assert "pool market_api allows 1 at once but CANDLE_MARKET_API_POOL_LIMIT asks for 3" in out


def test_what_waits_for_the_daemon_is_named(
    external_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Switched-on schedules and requested backfills, read through the instance's public
    methods: the stopped schedule and the finished backfill are not named. (Dagster exports no
    constructor for these records; the test stores them as the UI and the daemon would.)"""
    ensure_tables(external_env["CANDLE_DATABASE_URL"])
    assert main(["pools", "apply"]) == 0
    with dg.DagsterInstance.get() as instance:
        instance.add_instigator_state(schedule_state("xnys_after_close", InstigatorStatus.RUNNING))
        instance.add_instigator_state(schedule_state("catchup_weekly", InstigatorStatus.STOPPED))
        instance.add_backfill(backfill("waiting", BulkActionStatus.REQUESTED))
        instance.add_backfill(backfill("done", BulkActionStatus.COMPLETED_SUCCESS))
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    [line] = [row for row in lines_with(out, "PROBLEM") if "heartbeat" in row]
    assert line.endswith(
        "waiting for it: running schedule(s)/sensor(s) xnys_after_close; 1 requested backfill(s)"
    ), line


def test_unreachable_database_and_bad_settings(
    external_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = external_env["CANDLE_DATABASE_URL"].replace("/warehouse_", "/missing_")
    monkeypatch.setenv("CANDLE_DATABASE_URL", gone)
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    assert "cannot connect to postgresql://postgres@/missing_" in out
    assert 'database "missing_' in out

    monkeypatch.setenv("CANDLE_DAGSTER_DATABASE_URL", "mysql://somewhere/dagster")
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    assert "CANDLE_DAGSTER_DATABASE_URL must be a postgresql:// URL" in out


def test_stopped_embedded_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CANDLE_DATABASE_URL", "CANDLE_DAGSTER_DATABASE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("CANDLE_STATE_DIR", str(state))
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    assert f"the embedded PostgreSQL of {state} is not running" in out
    assert "`candle-pipeline db up`" in out
    assert not (state / "postgres" / "data").exists(), "the doctor starts nothing"


def test_a_missing_dagster_yaml(
    external_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty_home"
    empty.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(empty))
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    assert f"DAGSTER_HOME={empty} has no dagster.yaml" in out


def test_a_daemon_running_with_other_settings_is_named(
    external_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon's settings_sensor records what its process runs with; `doctor`, run with
    other settings, names each difference."""
    assert main(["pools", "apply"]) == 0
    _, out = doctor(capsys)
    assert "no daemon has recorded its settings yet" in out

    monkeypatch.setenv("CANDLE_SOURCE", "yahoo")
    monkeypatch.setenv("CANDLE_QUALITY_THRESHOLD", "0.9")
    clear_settings()
    with dg.DagsterInstance.get() as instance, dg.build_sensor_context(instance=instance) as tick:
        skipped = settings_sensor(tick)
    assert "CANDLE_SOURCE=yahoo" in str(skipped.skip_message)

    monkeypatch.delenv("CANDLE_SOURCE")
    monkeypatch.delenv("CANDLE_QUALITY_THRESHOLD")
    clear_settings()
    code, out = doctor(capsys)
    assert code == EXIT_FAILED
    [line] = [row for row in lines_with(out, "PROBLEM") if "daemon" in row]
    assert "CANDLE_QUALITY_THRESHOLD: daemon 0.9, here 0.8" in line
    assert "CANDLE_SOURCE: daemon yahoo, here csv" in line
    assert "put them in .env and restart the daemon" in line

    with dg.DagsterInstance.get() as instance, dg.build_sensor_context(instance=instance) as tick:
        settings_sensor(tick)
    code, out = doctor(capsys)
    assert "runs with the same settings" in out, out
