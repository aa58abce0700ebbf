"""add_partition_metadata: each partition's own metadata on its own materialisation event.

It writes into Dagster's private step metadata accumulator: these tests fail if Dagster moves it.
"""

import dagster as dg
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from candle_pipeline.assets.metadata import add_partition_metadata

PARTITIONS = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def lettered(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    keys = context.partition_keys
    add_partition_metadata(context, {key: {"rows": index} for index, key in enumerate(keys)})
    add_partition_metadata(context, {keys[0]: {"status": "first"}})
    return dg.MaterializeResult(metadata={"run_total": len(keys)})


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def stray(context: dg.AssetExecutionContext) -> None:
    add_partition_metadata(context, {"d": {"rows": 1}})


def run_range(asset: dg.AssetsDefinition, first: str, last: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


def test_each_partition_carries_its_own_metadata_and_the_run_wide_metadata() -> None:
    result = run_range(lettered, "a", "c")
    assert result.success
    events = {
        event.partition: event for event in result.asset_materializations_for_node("lettered")
    }
    assert set(events) == {"a", "b", "c"}
    assert {key: events[key].metadata["rows"].value for key in events} == {"a": 0, "b": 1, "c": 2}
    assert events["a"].metadata["status"].value == "first"
    assert "status" not in events["b"].metadata
    assert all(event.metadata["run_total"].value == 3 for event in events.values())


def test_metadata_for_a_partition_outside_the_run_fails_the_step() -> None:
    result = run_range(stray, "a", "b")
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "does not target" in failure.step_failure_data.error.to_string()


def test_an_empty_mapping_is_a_no_op() -> None:
    @dg.asset(partitions_def=PARTITIONS)
    def quiet(context: dg.AssetExecutionContext) -> None:
        add_partition_metadata(context, {})

    assert dg.materialize([quiet], partition_key="a").success


@pytest.mark.parametrize("partition_key", ["a", "d"])
def test_a_single_partition_run_works_too(partition_key: str) -> None:
    result = dg.materialize([lettered], partition_key=partition_key)
    [event] = result.asset_materializations_for_node("lettered")
    assert event.partition == partition_key
    assert event.metadata["rows"].value == 0
