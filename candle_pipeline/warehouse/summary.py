"""Row counts of the warehouse tables."""

from __future__ import annotations

import sqlalchemy as sa

from candle_pipeline.warehouse.tables import TABLES


def table_totals(connection: sa.Connection) -> dict[str, int]:
    return {
        name: int(
            connection.execute(sa.select(sa.func.count()).select_from(spec.table)).scalar_one()
        )
        for name, spec in TABLES.items()
    }
