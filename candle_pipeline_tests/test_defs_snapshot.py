"""What ships: the loaded `defs` against its reviewed snapshot, and the snapshot walker itself.

After an intended change to an asset, check, job, schedule, sensor or resource, `make snapshot`
rewrites candle_pipeline_tests/snapshots/defs.json; the diff shows in review.
"""

from __future__ import annotations

import difflib
import json

import dagster as dg
import pytest

from candle_pipeline_tests.defs_snapshot import (
    CHECKOUT,
    CHECKOUT_MARK,
    PINNED_ENV,
    SECRET_VALUES,
    SNAPSHOT_FILE,
    render,
    shipped_snapshot,
    snapshot,
)


class Store(dg.ConfigurableResource):
    """A resource of the walker's own test definitions."""

    url: str
    timeout_seconds: float = 5.0
    pool_size: int = 2


@pytest.fixture(scope="module")
def shipped() -> str:
    return shipped_snapshot()


def test_the_shipped_definitions_match_their_snapshot(shipped: str) -> None:
    reviewed = SNAPSHOT_FILE.read_text()
    diff = "".join(
        difflib.unified_diff(
            reviewed.splitlines(keepends=True),
            shipped.splitlines(keepends=True),
            fromfile=f"{SNAPSHOT_FILE.name} (reviewed)",
            tofile="defs (loaded now)",
        )
    )
    assert not diff, (
        f"the shipped definitions changed; after an intended change run `make snapshot`\n{diff}"
    )


def test_the_snapshot_holds_every_kind_of_definition(shipped: str) -> None:
    data = json.loads(shipped)
    assert set(data["assets"]) == {"market_timings", "raw_quotes", "validated_quotes", "candles"}
    assert data["assets"]["raw_quotes"]["computed_by"]["pool"] == "market_api"
    assert "validated_quotes/quality_score" in data["asset_checks"]
    assert "market_data_job" in data["jobs"]
    assert data["schedules"] and data["sensors"]
    assert data["resources"]["warehouse"]["fields"]["database_url"]["value"] == {
        "env": "CANDLE_DATABASE_URL"
    }


def test_secrets_show_as_their_variable_never_their_value(shipped: str) -> None:
    fields = json.loads(shipped)["resources"]["market_data"]["fields"]
    assert fields["polygon_api_key"]["value"] == {"env": "CANDLE_POLYGON_API_KEY"}
    for secret in SECRET_VALUES:
        assert secret not in shipped


def test_the_snapshot_holds_no_path_of_this_machine(shipped: str) -> None:
    assert str(CHECKOUT) not in shipped
    assert f'"{CHECKOUT_MARK}/candle_pipeline/data/sample"' in shipped
    assert PINNED_ENV["CANDLE_PARTITION_START"] in shipped


def test_the_walker_reads_each_policy_a_definition_declares() -> None:
    days = dg.DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1)

    @dg.asset(
        partitions_def=days,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=7),
        retry_policy=dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL),
        pool="api",
        group_name="prices",
        kinds={"python"},
        automation_condition=dg.AutomationCondition.eager(),
        check_specs=[dg.AssetCheckSpec("fresh", asset="prices", blocking=True)],
    )
    def prices(store: Store) -> dg.MaterializeResult:
        """Stands for an asset of the project; never run."""
        return dg.MaterializeResult(metadata={"url": store.url})

    job = dg.define_asset_job("prices_job", selection=[prices])
    defs = dg.Definitions(
        assets=[prices],
        jobs=[job],
        schedules=[
            dg.ScheduleDefinition(
                job=job,
                cron_schedule="0 18 * * 1-5",
                execution_timezone="Europe/London",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        ],
        sensors=[
            dg.SensorDefinition(
                "watch", evaluation_fn=lambda _: None, job=job, minimum_interval_seconds=90
            )
        ],
        resources={
            "store": Store(
                url=dg.EnvVar("STORE_URL"),
                timeout_seconds=9.0,
                pool_size=dg.EnvVar.int("STORE_POOL_SIZE"),
            )
        },
    )

    data = json.loads(render(snapshot(defs)))

    asset = data["assets"]["prices"]
    assert asset["partitions"]["start"] == "2020-01-01T00:00:00+00:00"
    assert asset["partitions"]["end_offset"] == 1
    assert asset["backfill_policy"] == {"policy_type": "MULTI_RUN", "max_partitions_per_run": 7}
    assert asset["computed_by"]["retry_policy"] == {
        "max_retries": 3,
        "delay": 2,
        "backoff": "EXPONENTIAL",
        "jitter": None,
    }
    assert asset["computed_by"]["pool"] == "api"
    assert (asset["group"], asset["kinds"], asset["checks"]) == ("prices", ["python"], ["fresh"])
    assert asset["automation_condition"] == "eager"
    assert data["asset_checks"]["prices/fresh"]["blocking"] is True
    assert data["jobs"]["prices_job"]["assets"] == ["prices"]
    assert data["schedules"]["prices_job_schedule"] == {
        "cron_schedule": "0 18 * * 1-5",
        "timezone": "Europe/London",
        "default_status": "RUNNING",
        "job": "prices_job",
        "tags": {},
    }
    assert data["sensors"]["watch"]["minimum_interval_seconds"] == 90
    assert data["resources"]["store"]["fields"] == {
        "url": {"default": "<required>", "value": {"env": "STORE_URL"}},
        "timeout_seconds": {"default": 5.0, "value": 9.0},
        "pool_size": {"default": 2, "value": {"env": "STORE_POOL_SIZE"}},
    }
