"""Per-partition materialisation metadata for assets that materialise many partitions per run.

`context.add_asset_metadata(..., partition_key=...)` costs, per call, a query for the dynamic
partitions, an expansion of the run's whole partition range to check the key, and a copy of all
metadata gathered so far: quadratic in the partitions of a run (10,060 ticker-days take minutes).
`add_partition_metadata` checks every key against ONE expansion of the run's partition keys and
merges all partitions' metadata into the step's accumulator in one step.

That accumulator is private to Dagster (pinned to 1.13 in pyproject.toml); this module is the only
place that touches it, and `candle_pipeline_tests/assets/test_metadata.py` fails if Dagster moves
it. Dagster turns the accumulated metadata into each partition's materialisation event exactly as
it does for `add_asset_metadata`.
"""

from collections.abc import Mapping

import dagster as dg
from dagster._core.execution.context.metadata_logging import (
    AssetMetadataHandle,
    OutputMetadataAccumulator,
)

ACCUMULATOR_ATTRIBUTE = "_metadata_accumulator"


class DagsterInternalsChangedError(RuntimeError):
    """The private Dagster structure this module relies on is not where it used to be."""


def add_partition_metadata(
    context: dg.AssetExecutionContext, by_partition: Mapping[str, Mapping[str, object]]
) -> None:
    """Attach each partition's own metadata to its materialisation event."""
    if not by_partition:
        return
    targeted = set(context.partition_keys)
    outside = [key for key in by_partition if key not in targeted]
    if outside:
        raise dg.DagsterInvariantViolationError(
            f"metadata for {len(outside)} partition(s) this run does not target, e.g. {outside[0]}"
        )
    step = context.get_step_execution_context()
    accumulator = getattr(step, ACCUMULATOR_ATTRIBUTE, None)
    if not isinstance(accumulator, OutputMetadataAccumulator):
        raise DagsterInternalsChangedError(
            "Dagster's step metadata accumulator has moved; update "
            "candle_pipeline/assets/metadata.py for this Dagster version"
        )
    asset_key = context.assets_def.key
    merged = dict(accumulator.per_output_metadata)
    for partition_key, metadata in by_partition.items():
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=partition_key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    setattr(step, ACCUMULATOR_ATTRIBUTE, OutputMetadataAccumulator(per_output_metadata=merged))
