"""Figure 1: writing (and reading back) minute bars in the warehouse.

- the project's path: the ticker-days of the frame -> `replace_partitions` (advisory lock, the
  keys copied into a temporary table, delete of their rows, binary COPY encoded by NumPy, one
  transaction);
- the old way: `executemany` upserts (INSERT ... ON CONFLICT DO UPDATE) in batches of 500 rows,
  each batch its own transaction, rows taken from the DataFrame with `itertuples`;
- the alternative binary encoder: psycopg's binary COPY with `set_types`, a `write_row` per row,
  into an empty table (encoding included);
- the ceiling: a plain COPY of an already encoded buffer (encoding not timed) into an empty table
  with the same indexes, in CSV and in binary; the faster of the two is the ceiling.

Each is measured on fresh partitions (empty table) and on a rewrite of the same partitions (the
rows exist: delete + insert, or conflicting upserts). Reads: `load_partitions` against the
spine's first version (SELECT ... fetchall() into a DataFrame).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date

import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg import sql

from bench.common import Report, best_of, create_database, section, spread, synthetic_raw, tickers
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import ensure_tables
from candle_pipeline.warehouse import binary_copy
from candle_pipeline.warehouse.partition_store import load_partitions, replace_partitions
from candle_pipeline.warehouse.tables import TABLES

SECTION = "write"
DAYS = (date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5))
BARS_PER_DAY = 390
EXECUTEMANY_BATCH = 500
PLAIN_TABLE = "bench_plain"
SPEC = TABLES["raw_quotes"]
# PostgreSQL type names for psycopg's binary COPY, by SQLAlchemy column type.
_PG_TYPES = {
    sa.Text: "text",
    sa.Date: "date",
    sa.DateTime: "timestamptz",
    sa.Float: "float8",
    sa.Integer: "int4",
    sa.Boolean: "bool",
}


def run(server: LocalPostgres, report: Report, rows: int, repeats: int) -> None:
    ticker_count = max(1, rows // (BARS_PER_DAY * len(DAYS)))
    section(f"1. warehouse write: {ticker_count} tickers x {len(DAYS)} days of minute bars")
    frame = synthetic_raw(tickers(ticker_count), DAYS, "1m")
    keys = [(day, ticker) for ticker in tickers(ticker_count) for day in DAYS]
    url = create_database(server, "bench_write")
    ensure_tables(url)
    with psycopg.connect(url) as conn:
        _measure(conn, report, frame, keys, repeats)


class _WriteBench:
    """The candidates, each a callable run after an untimed setup, on one connection."""

    def __init__(self, conn: psycopg.Connection, frame: pd.DataFrame, keys: list[tuple]) -> None:
        self.conn = conn
        self.frame = frame
        self.keys = keys
        self.table = sql.Identifier(SPEC.table.schema, SPEC.name)
        self.plain = sql.Identifier(SPEC.table.schema, PLAIN_TABLE)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(self.plain, self.table)
        )
        conn.commit()
        self.csv_data = _csv(frame)
        self.binary_data = b"".join(binary_copy.encode(SPEC.table, frame))
        self.upsert = _upsert_statement()

    def truncate(self, name: sql.Identifier) -> None:
        self.conn.execute(sql.SQL("TRUNCATE {}").format(name))
        self.conn.commit()

    def project_write(self) -> None:
        replace_partitions(self.conn, SPEC, self.keys, self.frame)

    def fresh_table(self) -> None:
        self.truncate(self.table)

    def written_table(self) -> None:
        self.truncate(self.table)
        self.project_write()

    def executemany(self) -> None:
        records = list(self.frame.itertuples(index=False, name=None))
        with self.conn.cursor() as cursor:
            for start in range(0, len(records), EXECUTEMANY_BATCH):
                cursor.executemany(self.upsert, records[start : start + EXECUTEMANY_BATCH])
                self.conn.commit()

    def psycopg_binary_copy(self) -> None:
        """The alternative to NumPy encoding: psycopg's binary COPY, one write_row per row."""
        columns = sql.SQL(", ").join(map(sql.Identifier, SPEC.columns))
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(self.plain, columns)
        types = [_PG_TYPES[type(column.type)] for column in SPEC.table.columns]
        records = (
            self.frame.astype(object)
            .where(self.frame.notna(), None)
            .itertuples(index=False, name=None)
        )
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for record in records:
                copy.write_row(record)
        self.conn.commit()

    def plain_copy(self, kind: str) -> None:
        data = self.csv_data if kind == "csv" else self.binary_data
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT {})").format(self.plain, sql.SQL(kind))
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(data)
        self.conn.commit()

    def candidates(self) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
        """name -> (setup, run); run in this order within each repetition."""
        return {
            "plain COPY csv, empty table": (
                lambda: self.truncate(self.plain),
                lambda: self.plain_copy("csv"),
            ),
            "plain COPY binary, empty table": (
                lambda: self.truncate(self.plain),
                lambda: self.plain_copy("binary"),
            ),
            "psycopg binary COPY (set_types, write_row), empty table": (
                lambda: self.truncate(self.plain),
                self.psycopg_binary_copy,
            ),
            "project write, fresh partitions": (self.fresh_table, self.project_write),
            "project write, rewrite": (self.written_table, self.project_write),
            "executemany-500 upsert, fresh": (self.fresh_table, self.executemany),
            "executemany-500 upsert, rewrite": (self.written_table, self.executemany),
        }


def _measure(
    conn: psycopg.Connection, report: Report, frame: pd.DataFrame, keys: list[tuple], repeats: int
) -> None:
    bench = _WriteBench(conn, frame, keys)
    candidates = bench.candidates()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, (setup, run) in candidates.items():
            times[name].extend(best_of(1, run, setup=setup)[1])
    best = {name: min(values) for name, values in times.items()}
    rows = len(frame)
    report.add(SECTION, "rows", rows, "rows", f"{len(keys)} ticker-days")
    for name in candidates:
        report.add(SECTION, name, rows / best[name], "rows/s", spread(times[name]))
    ceiling = min(best["plain COPY csv, empty table"], best["plain COPY binary, empty table"])
    fresh = best["project write, fresh partitions"]
    rewrite = best["project write, rewrite"]
    report.add(SECTION, "write fresh / plain COPY ceiling", ceiling / fresh, "x", "target >= 0.6")
    report.add(
        SECTION,
        "write fresh / executemany fresh",
        best["executemany-500 upsert, fresh"] / fresh,
        "x",
        "target >= 1.5",
    )
    report.add(
        SECTION,
        "rewrite / executemany rewrite",
        best["executemany-500 upsert, rewrite"] / rewrite,
        "x",
        "target >= 1.5",
    )

    bench.written_table()
    load, load_times = best_of(repeats, lambda: load_partitions(conn, SPEC, keys))
    fetchall, fetchall_times = best_of(repeats, lambda: _fetchall(conn, keys))
    report.add(SECTION, "project read (load_partitions)", rows / load, "rows/s", spread(load_times))
    report.add(
        SECTION, "read by fetchall (spine v1)", rows / fetchall, "rows/s", spread(fetchall_times)
    )
    report.add(SECTION, "read / fetchall", fetchall / load, "x")


def _upsert_statement() -> sql.Composed:
    columns = SPEC.columns
    keys = SPEC.order_by
    return sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({keys}) DO UPDATE SET "
        "{updates}"
    ).format(
        table=sql.Identifier(SPEC.table.schema, SPEC.name),
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() for _ in columns),
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        updates=sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(name), sql.Identifier(name))
            for name in columns
            if name not in keys
        ),
    )


def _csv(frame: pd.DataFrame) -> bytes:
    text = frame.assign(
        trade_date=frame["trade_date"].dt.strftime("%Y-%m-%d"),
        ts=frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S+00"),
        fetched_at=frame["fetched_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00"),
    )
    buffer = io.StringIO()
    text.to_csv(buffer, header=False, index=False)
    return buffer.getvalue().encode()


def _fetchall(conn: psycopg.Connection, partitions: list[tuple]) -> pd.DataFrame:
    """How the spine first read partitions: rows as Python objects, then a DataFrame."""
    query = sql.SQL(
        "SELECT {columns} FROM {table} AS t JOIN unnest(%s::date[], %s::text[]) AS k(d, s) "
        "ON t.trade_date = k.d AND t.ticker = k.s ORDER BY {order}"
    ).format(
        columns=sql.SQL(", ").join(sql.Identifier("t", name) for name in SPEC.columns),
        table=sql.Identifier(SPEC.table.schema, SPEC.name),
        order=sql.SQL(", ").join(sql.Identifier("t", name) for name in SPEC.order_by),
    )
    with conn.cursor() as cursor:
        cursor.execute(query, [[p[0] for p in partitions], [p[1] for p in partitions]])
        records = cursor.fetchall()
    conn.commit()
    return pd.DataFrame.from_records(records, columns=SPEC.columns)
