"""The quality reports of ticker-days, and the previous close each validation starts from.

Reports are kept per run (history): one row per ticker-day a run scored, with every component of
the score and what each rule found. Writes replace exactly the run's rows, through the same COPY
path as the tables of the assets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.quality import (
    PREVIOUS_CLOSE_COLUMNS,
    PREVIOUS_CLOSE_LOOKBACK_DAYS,
    Assessment,
)
from candle_pipeline.warehouse.partition_store import qualified, replace_partitions
from candle_pipeline.warehouse.tables import PartitionedTable, quality_reports, validated_quotes

REPORTS = PartitionedTable(quality_reports, ("trade_date", "ticker", "run_id"), "trade_date")


def report_rows(
    assessment: Assessment, run_id: str, evaluated_at: datetime, threshold: float
) -> pd.DataFrame:
    """The table rows of an assessment made by one run."""
    return assessment.reports.assign(
        run_id=run_id,
        evaluated_at=pd.Timestamp(evaluated_at).tz_convert("UTC"),
        threshold=threshold,
        passed=assessment.passed(threshold),
    ).loc[:, REPORTS.columns]


def write_reports(
    conn: psycopg.Connection,
    assessment: Assessment,
    run_id: str,
    evaluated_at: datetime,
    threshold: float,
) -> int:
    """Store the run's reports (replacing the run's earlier rows for them); returns rows written."""
    rows = report_rows(assessment, run_id, evaluated_at, threshold)
    return replace_partitions(conn, REPORTS, rows, rows)


def previous_closes(conn: psycopg.Connection, firsts: Mapping[str, date]) -> pd.DataFrame:
    """Each ticker's last valid close in the days just before its first day in `firsts`
    (PREVIOUS_CLOSE_COLUMNS).

    Tickers without a valid bar in the PREVIOUS_CLOSE_LOOKBACK_DAYS days before are left out.
    """
    table = qualified(validated_quotes)
    query = sql.SQL(
        "SELECT t.ticker, last.trade_date, last.close "
        "FROM unnest(%s::text[], %s::date[]) AS t(ticker, before) "
        "CROSS JOIN LATERAL (SELECT v.trade_date, v.close FROM {table} AS v "
        "WHERE v.ticker = t.ticker AND v.trade_date < t.before "
        "AND v.trade_date >= t.before - %s AND v.is_valid "
        "ORDER BY v.trade_date DESC, v.ts DESC LIMIT 1) AS last"
    ).format(table=table)
    with conn.cursor() as cursor:
        cursor.execute(query, (list(firsts), list(firsts.values()), PREVIOUS_CLOSE_LOOKBACK_DAYS))
        records = cursor.fetchall()
    frame = pd.DataFrame.from_records(records, columns=list(PREVIOUS_CLOSE_COLUMNS))
    return frame.astype({"ticker": object, "trade_date": "datetime64[ns]", "close": "float64"})
