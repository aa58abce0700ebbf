"""The Postgres IO manager of the day-partitioned assets, for pandas DataFrames.

Writing replaces rows key by key (`PartitionedTable.key_columns`): a `market_timings` output
replaces its days; a per-ticker output replaces exactly the ticker-days present in the frame, so
the other tickers' rows of the same days stay untouched and a ticker-day a run did not store
anew keeps its rows. Inside a step's unit of work (`WarehouseResource.unit_of_work`) the write
joins the step's one transaction. Loading reads every row of the requested days.
"""

from collections.abc import Sequence
from datetime import date

import dagster as dg
import pandas as pd

from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import load_days, replace_partitions
from candle_pipeline.warehouse.tables import TABLES, PartitionedTable


class PostgresPartitionIOManager(dg.ConfigurableIOManager):
    """Stores each asset in its `market` table."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        spec = _table_for(context.asset_key)
        keys = _keys(spec, obj, _days(context.asset_partition_keys))
        self.warehouse.write(lambda conn: replace_partitions(conn, spec, keys, obj))
        context.add_output_metadata({"table": dg.MetadataValue.text(spec.table.fullname)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        spec = _table_for(context.asset_key)
        days = _days(context.asset_partition_keys)
        return self.warehouse.run(lambda conn: load_days(conn, spec, days))


def _table_for(asset_key: dg.AssetKey) -> PartitionedTable:
    name = asset_key.path[-1]
    if name not in TABLES:
        raise dg.DagsterInvariantViolationError(f"no warehouse table is defined for asset {name}")
    return TABLES[name]


def _days(partition_keys: Sequence[str]) -> list[date]:
    return [date.fromisoformat(key) for key in partition_keys]


def _keys(spec: PartitionedTable, frame: pd.DataFrame, days: Sequence[date]) -> pd.DataFrame:
    """The keys a write replaces: the days themselves, or the ticker-days the frame holds (which
    must lie in those days)."""
    if spec.key_columns == (spec.day_column,):
        return pd.DataFrame({spec.day_column: pd.to_datetime(list(days))})
    present = frame.loc[:, list(spec.key_columns)].drop_duplicates()
    outside = sorted(set(present[spec.day_column].dt.date) - set(days))
    if outside:
        raise dg.DagsterInvariantViolationError(
            f"{spec.name}: rows of {outside[0]}, a day this run does not materialise"
        )
    return present
