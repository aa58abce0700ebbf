"""Row counts of the warehouse tables, per table and per ticker-day partition."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from candle_pipeline.warehouse.tables import TABLES

PER_TICKER_TABLES = ("raw_quotes", "validated_quotes", "candles")


def table_totals(connection: sa.Connection) -> dict[str, int]:
    return {
        name: int(
            connection.execute(sa.select(sa.func.count()).select_from(spec.table)).scalar_one()
        )
        for name, spec in TABLES.items()
    }


def partition_counts(engine: sa.Engine) -> pd.DataFrame:
    """One row per (ticker, trade_date) with the row count of each per-ticker table."""
    frames = []
    with engine.connect() as connection:
        for name in PER_TICKER_TABLES:
            table = TABLES[name].table
            query = sa.select(
                table.c.ticker, table.c.trade_date, sa.func.count().label(name)
            ).group_by(table.c.ticker, table.c.trade_date)
            frames.append(
                pd.DataFrame(
                    connection.execute(query).all(), columns=["ticker", "trade_date", name]
                ).set_index(["ticker", "trade_date"])
            )
    counts = pd.concat(frames, axis=1).fillna(0).astype("int64").sort_index()
    return counts.reset_index()
