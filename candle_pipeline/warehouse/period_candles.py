"""Weekly and monthly candles in `market.period_candles`: what a run reads to judge a period (the
stored daily candles of its days) and how it stores the verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.periods import DAILY, PERIOD_KEY
from candle_pipeline.domain.schemas import CandlesSchema, pandas_dtypes
from candle_pipeline.warehouse.partition_store import qualified, replace_partitions
from candle_pipeline.warehouse.tables import PERIOD_CANDLES, candles

# What a period needs of a daily candle: every column but its bar count, typed as its contract.
DAILY_CANDLE_DTYPES = {
    name: dtype for name, dtype in pandas_dtypes(CandlesSchema).items() if name != "bar_count"
}


def daily_candles(conn: psycopg.Connection, days: Sequence[date]) -> pd.DataFrame:
    """The stored daily candles of `days` (only the `1d` rows: a period needs nothing finer)."""
    query = sql.SQL(
        "SELECT {columns} FROM {table} WHERE {interval} = %(daily)s AND {day} = ANY(%(days)s)"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, DAILY_CANDLE_DTYPES)),
        table=qualified(candles),
        interval=sql.Identifier("interval"),
        day=sql.Identifier("trade_date"),
    )
    with conn.cursor() as cursor:
        cursor.execute(query, {"daily": DAILY, "days": list(days)})
        rows = cursor.fetchall()
    return pd.DataFrame(rows, columns=list(DAILY_CANDLE_DTYPES)).astype(DAILY_CANDLE_DTYPES)


def write_periods(
    conn: psycopg.Connection, periods: pd.DataFrame, built_at: datetime, run_id: str
) -> int:
    """Replace the rows of the judged periods by `periods` (domain.periods.PERIOD_COLUMNS)."""
    rows = periods.assign(built_at=pd.Timestamp(built_at), run_id=run_id)
    return replace_partitions(conn, PERIOD_CANDLES, rows.loc[:, PERIOD_KEY], rows)
