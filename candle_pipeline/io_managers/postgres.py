"""The partition-aware Postgres IO manager for pandas DataFrames.

Writing replaces exactly the run's partitions of the asset's table in one transaction (COPY);
loading reads exactly the requested partitions. Tables are looked up by asset name.
"""

from collections.abc import Sequence
from datetime import date

import dagster as dg
import pandas as pd

from candle_pipeline.partitions import KEY_SEPARATOR
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import PREVIEW_ROWS
from candle_pipeline.warehouse.partition_store import (
    PartitionValues,
    load_partitions,
    replace_partitions,
)
from candle_pipeline.warehouse.tables import TABLES, PartitionedTable


class PostgresPartitionIOManager(dg.ConfigurableIOManager):
    """Stores each asset in its `market` table, one transaction per write."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        spec = _table_for(context.asset_key)
        partitions = _partition_values(spec, context.asset_partition_keys)
        written = self.warehouse.run(lambda conn: replace_partitions(conn, spec, partitions, obj))
        context.add_output_metadata(
            {
                "table": dg.MetadataValue.text(spec.table.fullname),
                "rows_written": dg.MetadataValue.int(written),
                "partitions_replaced": dg.MetadataValue.int(len(partitions)),
                "preview": dg.MetadataValue.md(
                    obj.head(PREVIEW_ROWS).to_markdown(index=False) if written else "(no rows)"
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        spec = _table_for(context.asset_key)
        partitions = _partition_values(spec, context.asset_partition_keys)
        return self.warehouse.run(lambda conn: load_partitions(conn, spec, partitions))


def _table_for(asset_key: dg.AssetKey) -> PartitionedTable:
    name = asset_key.path[-1]
    if name not in TABLES:
        raise dg.DagsterInvariantViolationError(f"no warehouse table is defined for asset {name}")
    return TABLES[name]


def _partition_values(spec: PartitionedTable, keys: Sequence[str]) -> list[PartitionValues]:
    """Partition keys as column values; dimensions come in name order, as Dagster joins them."""
    dimensions = sorted(spec.partition_columns)
    values = []
    for key in keys:
        parts = str(key).split(KEY_SEPARATOR)
        if len(parts) != len(dimensions):
            raise dg.DagsterInvariantViolationError(
                f"partition key {key!r} does not have the dimensions {dimensions} of {spec.name}"
            )
        by_dimension = dict(zip(dimensions, parts, strict=True))
        values.append(
            tuple(
                date.fromisoformat(by_dimension[dim]) if dim == "date" else by_dimension[dim]
                for dim in spec.partition_columns
            )
        )
    return values
