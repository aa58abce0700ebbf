"""The quality reports of ticker-days, and the previous close each validation starts from.

Reports are kept per run (history): one row per ticker-day a run scored, with every component of
the score and what each rule found. Writes replace exactly the run's rows, through the same COPY
path as the tables of the assets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.quality import (
    FLAG_NAMES,
    PREVIOUS_CLOSE_COLUMNS,
    PartitionQuality,
)
from candle_pipeline.settings import PREVIOUS_CLOSE_LOOKBACK_DAYS
from candle_pipeline.warehouse.partition_store import qualified, replace_partitions
from candle_pipeline.warehouse.tables import PartitionedTable, quality_reports, validated_quotes

REPORTS = PartitionedTable(quality_reports, ("trade_date", "ticker", "run_id"), "trade_date")


def report_rows(
    reports: Sequence[PartitionQuality], run_id: str, evaluated_at: datetime, threshold: float
) -> pd.DataFrame:
    """The table rows of `reports` for one run."""
    return pd.DataFrame(
        {
            "ticker": [r.ticker for r in reports],
            "trade_date": pd.to_datetime([r.trade_date for r in reports]),
            "run_id": run_id,
            "evaluated_at": pd.Timestamp(evaluated_at).tz_convert("UTC"),
            "status": [r.status for r in reports],
            "score": [r.score for r in reports],
            "completeness": [r.completeness for r in reports],
            "validity": [r.validity for r in reports],
            "consistency": [r.consistency for r in reports],
            "threshold": threshold,
            "passed": [r.passed(threshold) for r in reports],
            "rows": [r.rows for r in reports],
            "valid_rows": [r.valid_rows for r in reports],
            "regular_bars": [r.regular_bars for r in reports],
            "expected_bars": [r.expected_bars for r in reports],
            "usable_bars": [r.usable_bars for r in reports],
            "gaps": [len(r.gaps) for r in reports],
            "gap_bars": [sum(gap.bars for gap in r.gaps) for r in reports],
            "regular_spikes": [r.regular_spikes for r in reports],
            **{f"{name}_rows": [r.flag_counts[name] for r in reports] for name in FLAG_NAMES},
        },
        columns=REPORTS.columns,
    ).astype({"score": "float64", "completeness": "float64", "validity": "float64"})


def write_reports(
    conn: psycopg.Connection,
    reports: Sequence[PartitionQuality],
    run_id: str,
    evaluated_at: datetime,
    threshold: float,
) -> int:
    """Store the run's reports (replacing the run's earlier rows for them); returns rows written."""
    rows = report_rows(reports, run_id, evaluated_at, threshold)
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
