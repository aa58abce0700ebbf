"""`market.ticker_days`, the state of every watched ticker-day: read for a run's days, written
with the run's data, and asked which ticker-days are due again and how complete a ticker is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.ticker_days import FAILED, RETRY_LATER, conform_states
from candle_pipeline.warehouse.partition_store import (
    load_days,
    lock_for_writing,
    qualified,
    replace_partitions,
)
from candle_pipeline.warehouse.tables import TABLES, TICKER_DAYS, ticker_days

DUE_COLUMNS = ("trade_date", "ticker", "retry_after", "updated_at")


def load_states(conn: psycopg.Connection, days: Sequence[date]) -> pd.DataFrame:
    """The stored state of every ticker on `days` (STATE_COLUMNS)."""
    return conform_states(load_days(conn, TICKER_DAYS, days))


class RewrittenMeanwhileError(RuntimeError):
    """Ticker-days another run rewrote after this run read them; this run writes nothing."""


def assert_unchanged(
    conn: psycopg.Connection, read: pd.DataFrame, keys: Sequence[tuple[date, str]]
) -> None:
    """Refuse to store what a run built from stored rows when another run has rewritten some of
    those ticker-days since `read` (their states, read before the rows).

    Takes the writer lock of raw_quotes first (the first table of the fixed order, so no other
    run can store new raw quotes before this transaction ends), then compares each ticker-day's
    stored `run_id` and `updated_at` with `read`.
    """
    lock_for_writing(conn, TABLES["raw_quotes"])
    wanted = set(keys)
    current = load_states(conn, sorted({day for day, _ in wanted}))

    def versions(states: pd.DataFrame) -> dict[tuple[date, str], tuple[object, object]]:
        return {
            (stamp.date(), ticker): (run_id, updated_at)
            for stamp, ticker, run_id, updated_at in zip(
                states["trade_date"],
                states["ticker"],
                states["run_id"],
                states["updated_at"],
                strict=True,
            )
            if (stamp.date(), ticker) in wanted
        }

    before, after = versions(read), versions(current)
    changed = sorted(key for key in wanted if before.get(key) != after.get(key))
    if changed:
        day, ticker = changed[0]
        raise RewrittenMeanwhileError(
            f"{len(changed)} ticker-day(s), e.g. {ticker} {day}, were rewritten by another run "
            "while this run built from their stored rows; nothing was written: run it again"
        )


def write_states(conn: psycopg.Connection, states: pd.DataFrame) -> int:
    """Store `states` (STATE_COLUMNS), replacing those ticker-days' rows; returns rows written."""
    return replace_partitions(conn, TICKER_DAYS, states, states)


def due_retries(conn: psycopg.Connection, now: datetime) -> pd.DataFrame:
    """Failed or retry-later ticker-days whose `retry_after` has passed (DUE_COLUMNS)."""
    query = sql.SQL(
        "SELECT trade_date, ticker, retry_after, updated_at FROM {table} "
        "WHERE status = ANY(%s) AND retry_after <= %s ORDER BY trade_date, ticker"
    ).format(table=qualified(ticker_days))
    with conn.cursor() as cursor:
        records = cursor.execute(query, ([RETRY_LATER, FAILED], now)).fetchall()
    return pd.DataFrame.from_records(records, columns=list(DUE_COLUMNS)).astype(
        {"trade_date": "datetime64[ns]", "ticker": object}
    )


def statuses(
    conn: psycopg.Connection, tickers: Sequence[str] | None, first: date, last: date
) -> pd.DataFrame:
    """(trade_date, ticker, status, last_error) between `first` and `last`, of `tickers` or every
    one (None or empty)."""
    query = sql.SQL(
        "SELECT trade_date, ticker, status, last_error FROM {table} "
        "WHERE trade_date BETWEEN %s AND %s AND (%s::text[] IS NULL OR ticker = ANY(%s::text[]))"
    ).format(table=qualified(ticker_days))
    names = list(tickers) if tickers else None
    with conn.cursor() as cursor:
        records = cursor.execute(query, (first, last, names, names)).fetchall()
    return pd.DataFrame.from_records(
        records, columns=["trade_date", "ticker", "status", "last_error"]
    ).astype({"trade_date": "datetime64[ns]"})
