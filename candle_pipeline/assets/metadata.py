"""Per-partition materialisation metadata for assets that materialise many partitions per run."""

from collections.abc import Mapping

import dagster as dg


def add_partition_metadata(
    context: dg.AssetExecutionContext, by_partition: Mapping[str, Mapping[str, object]]
) -> None:
    """Attach each partition's own metadata to its materialisation event."""
    for partition_key, metadata in by_partition.items():
        context.add_asset_metadata(dict(metadata), partition_key=partition_key)
