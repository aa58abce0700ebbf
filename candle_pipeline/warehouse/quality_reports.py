"""The quality reports of ticker-days, and the previous close each validation starts from.

Reports are kept per run (history); the latest report of a ticker-day decides whether its candles
may be built. Writes replace exactly the run's rows, through the same COPY path as the tables of
the assets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

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

REPORTS = PartitionedTable(
    quality_reports, {"date": "trade_date", "ticker": "ticker", "run": "run_id"}
)


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
    keys = [(r.trade_date, r.ticker, run_id) for r in reports]
    return replace_partitions(conn, REPORTS, keys, rows)


def latest_reports(
    conn: psycopg.Connection, ticker_days: Sequence[tuple[date, str]]
) -> pd.DataFrame:
    """The latest report of each of `ticker_days` that has one (REPORTS columns)."""
    table = qualified(quality_reports)
    query = sql.SQL(
        "SELECT DISTINCT ON (t.ticker, t.trade_date) {columns} FROM {table} AS t "
        "JOIN unnest(%s::date[], %s::text[]) AS k(trade_date, ticker) "
        "ON t.trade_date = k.trade_date AND t.ticker = k.ticker "
        "ORDER BY t.ticker, t.trade_date, t.evaluated_at DESC"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("t", name) for name in REPORTS.columns),
        table=table,
    )
    with conn.cursor() as cursor:
        cursor.execute(query, ([day for day, _ in ticker_days], [t for _, t in ticker_days]))
        records = cursor.fetchall()
    conn.commit()
    frame = pd.DataFrame.from_records(records, columns=REPORTS.columns)
    return frame.assign(trade_date=pd.to_datetime(frame["trade_date"]).astype("datetime64[ns]"))


def previous_closes(conn: psycopg.Connection, tickers: Sequence[str], before: date) -> pd.DataFrame:
    """Each ticker's last valid close in the days just before `before` (PREVIOUS_CLOSE_COLUMNS).

    Tickers without a valid bar in the last PREVIOUS_CLOSE_LOOKBACK_DAYS days are left out.
    """
    table = qualified(validated_quotes)
    query = sql.SQL(
        "SELECT t.ticker, last.trade_date, last.close FROM unnest(%s::text[]) AS t(ticker) "
        "CROSS JOIN LATERAL (SELECT v.trade_date, v.close FROM {table} AS v "
        "WHERE v.ticker = t.ticker AND v.trade_date < %s AND v.trade_date >= %s AND v.is_valid "
        "ORDER BY v.trade_date DESC, v.ts DESC LIMIT 1) AS last"
    ).format(table=table)
    earliest = before - timedelta(days=PREVIOUS_CLOSE_LOOKBACK_DAYS)
    with conn.cursor() as cursor:
        cursor.execute(query, (list(tickers), before, earliest))
        records = cursor.fetchall()
    conn.commit()
    frame = pd.DataFrame.from_records(records, columns=list(PREVIOUS_CLOSE_COLUMNS))
    return frame.astype({"ticker": object, "trade_date": "datetime64[ns]", "close": "float64"})
