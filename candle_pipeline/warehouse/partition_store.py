"""Key-exact bulk reads and writes of DataFrames against the warehouse tables.

A write replaces exactly the rows of the given keys (a day, a ticker-day; `PartitionedTable.
key_columns`) in one transaction: it takes the table's writer lock, deletes those keys' rows and
COPYs the new rows in, in PostgreSQL's binary format encoded by NumPy (`binary_copy`) chunk by
chunk while a writer thread sends the previous chunk, so encoding overlaps with the server's work.
Readers see either the old or the new rows of a key, never a mix, and rows of other keys are never
touched. Inside a caller's transaction the write is a savepoint of it.

A read COPYs the rows of some keys, or of some days, out as CSV, with timestamps and dates as
integers, and parses them with pandas' C reader: no Python object per value, and every double
read back bit for bit as it was stored.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.dialects import postgresql

from candle_pipeline.warehouse import binary_copy
from candle_pipeline.warehouse.tables import PartitionedTable

KeyValues = tuple[date | str, ...]
# Keys as a frame of the key columns, or as tuples of their values in that order.
Keys = pd.DataFrame | Sequence[KeyValues]
# The temporary table a statement's keys are copied into.
KEYS_TABLE = "candle_keys"
# Rows per chunk of a warehouse COPY: bounds the memory of the encoded buffer, and lets encoding
# the next chunk overlap with the server ingesting the previous one.
COPY_CHUNK_ROWS = 50_000
NANOS_PER_MICROSECOND = 1_000


class PartitionWriteError(ValueError):
    """A frame that does not fit the keys it is written for; nothing was written."""


def replace_partitions(
    conn: psycopg.Connection,
    spec: PartitionedTable,
    keys: Keys,
    frame: pd.DataFrame,
) -> int:
    """Replace the rows of `keys` (values of `spec.key_columns`) by `frame`; returns the rows
    written."""
    rows = _conform(spec, frame)
    key_frame = _key_frame(spec.key_columns, keys)
    _check_rows_inside(spec, key_frame, rows)
    table = qualified(spec.table)
    with conn.transaction():
        lock_for_writing(conn, spec)
        _stage_keys(conn, spec, key_frame)
        conn.execute(
            sql.SQL("DELETE FROM {table} AS t USING {keys} AS k WHERE {match}").format(
                table=table, keys=sql.Identifier(KEYS_TABLE), match=_key_match(spec.key_columns)
            )
        )
        copy_statement = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT binary)").format(
            table=table, columns=sql.SQL(", ").join(map(sql.Identifier, spec.columns))
        )
        with (
            conn.cursor() as cursor,
            cursor.copy(copy_statement, writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            copy.write(binary_copy.HEADER)
            for start in range(0, len(rows), COPY_CHUNK_ROWS):
                chunk = rows.iloc[start : start + COPY_CHUNK_ROWS]
                for block in binary_copy.encode_rows(spec.table, chunk):
                    copy.write(block)
            copy.write(binary_copy.TRAILER)
    return len(rows)


def lock_for_writing(conn: psycopg.Connection, spec: PartitionedTable) -> None:
    """Take `spec`'s writer lock until the end of the transaction: writers of a table take turns
    (and a step's unit of work takes its tables' locks in one fixed order)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{spec.table.fullname}",))


def load_partitions(conn: psycopg.Connection, spec: PartitionedTable, keys: Keys) -> pd.DataFrame:
    """The rows of `keys` (values of `spec.key_columns`), in primary-key order, typed as the
    writers produce them."""
    return _load(conn, spec, _key_frame(spec.key_columns, keys))


def load_days(
    conn: psycopg.Connection, spec: PartitionedTable, days: Sequence[date]
) -> pd.DataFrame:
    """Every row of `days` (by `spec.day_column`), in primary-key order."""
    return _load(conn, spec, _key_frame((spec.day_column,), [(day,) for day in days]))


def load_range(
    conn: psycopg.Connection,
    spec: PartitionedTable,
    tickers: Sequence[str],
    *,
    interval: str,
    first: date,
    last: date,
) -> pd.DataFrame:
    """The rows of `tickers` at `interval` whose day is from `first` to `last`, in primary-key
    order (a table of bars: `ticker` and `interval` columns)."""
    statement = sql.SQL(
        "COPY (SELECT {columns} FROM {table} AS t WHERE t.ticker = ANY({tickers}) "
        "AND t.interval = {interval} AND {day} BETWEEN {first} AND {last} "
        "ORDER BY {order}) TO STDOUT (FORMAT csv)"
    ).format(
        columns=sql.SQL(", ").join(_export_expression(column) for column in spec.table.columns),
        table=qualified(spec.table),
        tickers=sql.Literal(list(tickers)),
        interval=sql.Literal(interval),
        day=sql.Identifier("t", spec.day_column),
        first=sql.Literal(first),
        last=sql.Literal(last),
        order=sql.SQL(", ").join(sql.Identifier("t", name) for name in spec.order_by),
    )
    buffer = io.BytesIO()
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for data in copy:
            buffer.write(data)
    buffer.seek(0)
    return _parse_export(spec, buffer)


def _load(conn: psycopg.Connection, spec: PartitionedTable, keys: pd.DataFrame) -> pd.DataFrame:
    with conn.transaction():
        _stage_keys(conn, spec, keys)
        statement = sql.SQL(
            "COPY (SELECT {columns} FROM {table} AS t JOIN {keys} AS k ON {match} "
            "ORDER BY {order}) TO STDOUT (FORMAT csv)"
        ).format(
            columns=sql.SQL(", ").join(_export_expression(column) for column in spec.table.columns),
            table=qualified(spec.table),
            keys=sql.Identifier(KEYS_TABLE),
            match=_key_match(tuple(keys.columns)),
            order=sql.SQL(", ").join(sql.Identifier("t", name) for name in spec.order_by),
        )
        buffer = io.BytesIO()
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            for data in copy:
                buffer.write(data)
    buffer.seek(0)
    return _parse_export(spec, buffer)


def qualified(table: sa.Table) -> sql.Composed:
    """`schema.table` as a quoted SQL identifier."""
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))


def _key_frame(columns: tuple[str, ...], keys: Keys) -> pd.DataFrame:
    """The keys as a frame of `columns` (a frame holding them, or tuples in that order)."""
    if isinstance(keys, pd.DataFrame):
        return keys.loc[:, list(columns)].drop_duplicates()
    if any(len(values) != len(columns) for values in keys):
        raise PartitionWriteError(f"each key needs {len(columns)} value(s): {', '.join(columns)}")
    return pd.DataFrame(list(keys), columns=list(columns)).drop_duplicates()


def _stage_keys(conn: psycopg.Connection, spec: PartitionedTable, keys: pd.DataFrame) -> None:
    """The keys in a temporary table of this transaction, by binary COPY: a run's keys can be a
    year of ticker-days, too many to send as parameters one Python object at a time."""
    layout = sa.Table(
        KEYS_TABLE,
        sa.MetaData(),
        *(sa.Column(column, spec.table.c[column].type) for column in keys.columns),
    )
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(KEYS_TABLE)))
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(KEYS_TABLE),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(_sql_type(spec, column)))
                for column in keys.columns
            ),
        )
    )
    statement = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(KEYS_TABLE))
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for block in binary_copy.encode(layout, keys):
            copy.write(block)


def _key_match(columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier("t", column), sql.Identifier("k", column))
        for column in columns
    )


def _sql_type(spec: PartitionedTable, column: str) -> str:
    """The SQL type name of one of our own columns (a constant of tables.py, not user input)."""
    return spec.table.c[column].type.compile(dialect=postgresql.dialect())


def _conform(spec: PartitionedTable, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [column for column in spec.columns if column not in frame.columns]
    extra = [column for column in frame.columns if column not in spec.columns]
    if missing or extra:
        raise PartitionWriteError(
            f"{spec.name}: frame columns do not match the table "
            f"(missing: {missing or 'none'}, unexpected: {extra or 'none'})"
        )
    return frame.loc[:, spec.columns]


def _check_rows_inside(spec: PartitionedTable, keys: pd.DataFrame, rows: pd.DataFrame) -> None:
    """Refuse rows that belong to keys other than those being replaced."""
    if rows.empty:
        return
    columns = list(spec.key_columns)
    present = _comparable(spec, rows[columns].drop_duplicates())
    allowed = _comparable(spec, keys)
    outside = ~pd.MultiIndex.from_frame(present).isin(pd.MultiIndex.from_frame(allowed))
    if outside.any():
        example = tuple(present[outside].iloc[0])
        raise PartitionWriteError(
            f"{spec.name}: rows of {int(outside.sum())} key(s) outside those being "
            f"written, e.g. {example}; nothing was written"
        )


def _comparable(spec: PartitionedTable, keys: pd.DataFrame) -> pd.DataFrame:
    """Partition values with dates as Timestamps, so frames and key lists compare equal."""
    converted = keys.copy()
    for column in keys.columns:
        if isinstance(spec.table.c[column].type, sa.Date):
            converted[column] = pd.to_datetime(converted[column]).astype("datetime64[ns]")
    return converted.reset_index(drop=True)


def _export_expression(column: sa.Column) -> sql.Composable:
    """The column as COPY should print it: timestamps as epoch microseconds, dates as epoch
    days, booleans as 0/1, so that parsing them back costs no date or text handling."""
    name = sql.Identifier("t", column.name)
    if isinstance(column.type, sa.DateTime):
        return sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(name)
    if isinstance(column.type, sa.Date):
        return sql.SQL("({} - DATE '1970-01-01')").format(name)
    if isinstance(column.type, sa.Boolean):
        return sql.SQL("{}::int").format(name)
    return name


def _parse_export(spec: PartitionedTable, buffer: io.BytesIO) -> pd.DataFrame:
    """The CSV of `_export_expression`s as a frame typed like the writers' frames."""
    read_types: dict[str, object] = {}
    for column in spec.table.columns:
        if isinstance(column.type, sa.Text):
            read_types[column.name] = object
        elif isinstance(column.type, sa.Float) or column.nullable:
            read_types[column.name] = "float64"
        else:
            read_types[column.name] = "int64"
    # Empty fields are NULLs, except in text columns that cannot be NULL (an empty text).
    nullable = [
        column.name
        for column in spec.table.columns
        if read_types[column.name] is not object or column.nullable
    ]
    if buffer.getbuffer().nbytes:
        frame = pd.read_csv(
            buffer,
            header=None,
            names=spec.columns,
            dtype=read_types,
            keep_default_na=False,
            na_values={name: [""] for name in nullable},
            # PostgreSQL prints the shortest text that reads back to the same double; pandas'
            # default fast parser can miss it by one unit in the last place.
            float_precision="round_trip",
        )
    else:
        frame = pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in read_types.items()})
    for column in spec.table.columns:
        name = column.name
        if isinstance(column.type, sa.DateTime):
            frame[name] = _instants(frame[name])
        elif isinstance(column.type, sa.Date):
            frame[name] = pd.to_datetime(frame[name], unit="D").astype("datetime64[ns]")
        elif isinstance(column.type, sa.Boolean):
            frame[name] = frame[name].astype(bool)
        elif isinstance(column.type, sa.Integer):
            frame[name] = frame[name].astype("int64")
    return frame


def _instants(micros: pd.Series) -> pd.Series:
    """Epoch microseconds (NaN where NULL) as UTC instants, in integer arithmetic: pandas'
    `to_datetime(unit="us")` goes through floating-point rounding, which failed now and then with
    "overflow encountered in multiply" on a column holding NULLs."""
    values = micros.to_numpy()
    missing = np.isnan(values) if values.dtype.kind == "f" else None
    if missing is not None:
        values = np.where(missing, 0, values).astype("int64")
    stamps = (values * NANOS_PER_MICROSECOND).view("datetime64[ns]")
    if missing is not None:
        stamps[missing] = np.datetime64("NaT")
    return pd.Series(stamps, index=micros.index, name=micros.name).dt.tz_localize("UTC")
