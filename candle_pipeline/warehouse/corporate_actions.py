"""The dated history of corporate actions per ticker, and the factor table derived from it.

A run that fetched a ticker stores what the provider reported: every action it saw replaces the
stored row of its ex-date (keeping the moment the action was first seen), an action stored on a
fetched day that the provider no longer reports is removed, and every other stored action of the
ticker stays. The ticker's rows of `adjustment_factors` are then recomputed from its whole
history (`domain.adjustments.adjustment_factors`), in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import psycopg
from psycopg import sql

from candle_pipeline.domain.adjustments import (
    REFERENCE_CLOSE_MAX_DAYS,
    adjustment_factors,
    fill_reference_closes,
)
from candle_pipeline.domain.corporate_actions import ACTION_DTYPES
from candle_pipeline.warehouse.partition_store import qualified, replace_partitions
from candle_pipeline.warehouse.tables import (
    ADJUSTMENT_FACTORS,
    TABLES,
    corporate_actions,
    raw_quotes,
)

ACTIONS = TABLES["corporate_actions"]
ACTION_KEY = ["ex_date", "ticker"]

# The last raw close stored before each (ticker, ex-date) pair, at most a few days before it.
LAST_CLOSE_BEFORE = """
SELECT w.ticker, w.ex_date, last.close
FROM unnest(%(tickers)s::text[], %(ex_dates)s::date[]) AS w(ticker, ex_date)
CROSS JOIN LATERAL (
    SELECT q.close FROM {raw_quotes} AS q
    WHERE q.ticker = w.ticker AND q.trade_date < w.ex_date AND q.close IS NOT NULL
      AND q.trade_date >= w.ex_date - %(max_days)s::int
    ORDER BY q.trade_date DESC, q.ts DESC
    LIMIT 1
) AS last
"""


def load_actions(conn: psycopg.Connection, tickers: list[str]) -> pd.DataFrame:
    """Every stored action of `tickers`, typed as the writers produce them."""
    statement = sql.SQL("SELECT {columns} FROM {table} WHERE ticker = ANY(%s)").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, ACTIONS.columns)),
        table=qualified(corporate_actions),
    )
    with conn.cursor() as cursor:
        cursor.execute(statement, (tickers,))
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=ACTIONS.columns)
    return frame.astype({column: ACTION_DTYPES[column] for column in ACTIONS.columns})


def load_factors(conn: psycopg.Connection, tickers: list[str]) -> pd.DataFrame:
    """The factor table's rows of `tickers`."""
    columns = ADJUSTMENT_FACTORS.columns
    statement = sql.SQL("SELECT {columns} FROM {table} WHERE ticker = ANY(%s)").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=qualified(ADJUSTMENT_FACTORS.table),
    )
    with conn.cursor() as cursor:
        cursor.execute(statement, (tickers,))
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    dates = {"ex_date": "datetime64[ns]", "known_on": "datetime64[ns]"}
    floats = {column: "float64" for column in columns if column not in (*dates, "ticker")}
    return frame.astype({**dates, **floats})


def store_actions(
    conn: psycopg.Connection,
    actions: pd.DataFrame,
    fetched_days: pd.DataFrame,
    closes: pd.DataFrame,
    now: datetime,
) -> int:
    """Store the fetched `actions` of the tickers of `fetched_days` (`trade_date`, `ticker`) and
    recompute their factors; `closes` (`ticker`, `trade_date`, `close`: the run's raw bars) give
    dividends their reference close first, the stored raw quotes second. Returns the actions
    written."""
    tickers = sorted(set(fetched_days["ticker"]) | set(actions["ticker"]))
    if not tickers:
        return 0
    stored = load_actions(conn, tickers)
    keys = pd.concat(
        [fetched_days.rename(columns={"trade_date": "ex_date"})[ACTION_KEY], actions[ACTION_KEY]],
        ignore_index=True,
    ).drop_duplicates()
    fresh = _with_history(actions, stored, now)
    fresh = fill_reference_closes(fresh, closes)
    fresh = fill_reference_closes(fresh, _stored_closes(conn, fresh))
    replaced = pd.MultiIndex.from_frame(stored[ACTION_KEY]).isin(
        pd.MultiIndex.from_frame(keys[ACTION_KEY])
    )
    history = pd.concat([stored[~replaced], fresh], ignore_index=True)
    written = replace_partitions(conn, ACTIONS, keys, fresh[ACTIONS.columns])
    replace_partitions(
        conn, ADJUSTMENT_FACTORS, [(ticker,) for ticker in tickers], adjustment_factors(history)
    )
    return written


def _with_history(actions: pd.DataFrame, stored: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """The fetched actions with the first sighting of the stored row of their ex-date (else
    now), and its reference close where the provider gave none."""
    earlier = stored.set_index(ACTION_KEY)[["first_seen", "reference_close"]]
    joined = actions.join(earlier, on=ACTION_KEY, rsuffix="_stored")
    first_seen = joined["first_seen"].fillna(pd.Timestamp(now).tz_convert("UTC"))
    return actions.assign(
        first_seen=first_seen.astype(ACTION_DTYPES["first_seen"]),
        reference_close=joined["reference_close"].fillna(joined["reference_close_stored"]),
    )


def _stored_closes(conn: psycopg.Connection, actions: pd.DataFrame) -> pd.DataFrame:
    """The last stored raw close before the ex-date of each dividend still without a reference."""
    missing = actions[actions["dividend"].notna() & actions["reference_close"].isna()]
    columns = ["ticker", "trade_date", "close"]
    if missing.empty:
        return pd.DataFrame(columns=columns)
    statement = sql.SQL(LAST_CLOSE_BEFORE).format(raw_quotes=qualified(raw_quotes))
    params = {
        "tickers": missing["ticker"].tolist(),
        "ex_dates": pd.to_datetime(missing["ex_date"]).dt.date.tolist(),
        "max_days": REFERENCE_CLOSE_MAX_DAYS,
    }
    with conn.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    # Placed the day before the ex-date, so the lookup of the last close before it finds it.
    found = pd.DataFrame(rows, columns=["ticker", "ex_date", "close"])
    return pd.DataFrame(
        {
            "ticker": found["ticker"],
            "trade_date": pd.to_datetime(found["ex_date"]) - pd.Timedelta(days=1),
            "close": found["close"].astype("float64"),
        }
    )
