"""Partition-exact bulk reads and writes of DataFrames against the warehouse tables.

A write replaces exactly the given partitions' rows in one transaction: it takes the table's
writer lock, deletes those partitions and COPYs the new rows in. Readers see either the old or the
new rows of a partition, never a mix, and rows of other partitions are never touched.
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
from sqlalchemy.dialects import postgresql

from candle_pipeline.warehouse.tables import PartitionedTable

PartitionValues = tuple[date | str, ...]

# Rows per chunk written into COPY; bounds the memory of the text buffer.
COPY_CHUNK_ROWS = 200_000


class PartitionWriteError(ValueError):
    """A frame that does not fit the partitions it is written for; nothing was written."""


def replace_partitions(
    conn: psycopg.Connection,
    spec: PartitionedTable,
    partitions: Sequence[PartitionValues],
    frame: pd.DataFrame,
) -> int:
    """Replace the rows of `partitions` in `spec`'s table by `frame`; returns rows written."""
    rows = _conform(spec, frame)
    _check_rows_inside(spec, partitions, rows)
    table = _qualified(spec)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{spec.table.fullname}",))
        conn.execute(
            sql.SQL("DELETE FROM {table} AS t USING {keys} WHERE {match}").format(
                table=table, keys=_keys_relation(spec), match=_key_match(spec)
            ),
            _key_arrays(spec, partitions),
        )
        copy_statement = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT csv)").format(
            table=table, columns=sql.SQL(", ").join(map(sql.Identifier, spec.columns))
        )
        with conn.cursor() as cursor, cursor.copy(copy_statement) as copy:
            for start in range(0, len(rows), COPY_CHUNK_ROWS):
                copy.write(_csv_chunk(spec, rows.iloc[start : start + COPY_CHUNK_ROWS]))
    return len(rows)


def load_partitions(
    conn: psycopg.Connection, spec: PartitionedTable, partitions: Sequence[PartitionValues]
) -> pd.DataFrame:
    """The rows of `partitions`, in primary-key order, typed as the writers produce them."""
    query = sql.SQL("SELECT {columns} FROM {table} AS t JOIN {keys} ON {match} ORDER BY {order}")
    statement = query.format(
        columns=sql.SQL(", ").join(sql.Identifier("t", name) for name in spec.columns),
        table=_qualified(spec),
        keys=_keys_relation(spec),
        match=_key_match(spec),
        order=sql.SQL(", ").join(sql.Identifier("t", name) for name in spec.order_by),
    )
    with conn.cursor() as cursor:
        cursor.execute(statement, _key_arrays(spec, partitions))
        records = cursor.fetchall()
    conn.commit()
    frame = pd.DataFrame.from_records(records, columns=spec.columns)
    return _typed(spec, frame)


def _qualified(spec: PartitionedTable) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(spec.table.schema), sql.Identifier(spec.name))


def _key_names(spec: PartitionedTable) -> list[str]:
    return [f"k{position}" for position in range(len(spec.partition_columns))]


def _keys_relation(spec: PartitionedTable) -> sql.Composed:
    arrays = [
        sql.SQL("%s::{}[]").format(sql.SQL(_sql_type(spec, column)))
        for column in spec.partition_columns.values()
    ]
    return sql.SQL("unnest({arrays}) AS k({names})").format(
        arrays=sql.SQL(", ").join(arrays),
        names=sql.SQL(", ").join(map(sql.Identifier, _key_names(spec))),
    )


def _key_match(spec: PartitionedTable) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier("t", column), sql.Identifier("k", key))
        for column, key in zip(spec.partition_columns.values(), _key_names(spec), strict=True)
    )


def _key_arrays(spec: PartitionedTable, partitions: Sequence[PartitionValues]) -> list[list]:
    width = len(spec.partition_columns)
    if any(len(values) != width for values in partitions):
        raise PartitionWriteError(f"{spec.name}: each partition needs {width} value(s)")
    return [[values[position] for values in partitions] for position in range(width)]


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


def _check_rows_inside(
    spec: PartitionedTable, partitions: Sequence[PartitionValues], rows: pd.DataFrame
) -> None:
    """Refuse rows that belong to partitions other than those being replaced."""
    if rows.empty:
        return
    columns = list(spec.partition_columns.values())
    present = _comparable(spec, rows[columns].drop_duplicates())
    allowed = _comparable(spec, pd.DataFrame(list(partitions), columns=columns))
    outside = ~pd.MultiIndex.from_frame(present).isin(pd.MultiIndex.from_frame(allowed))
    if outside.any():
        example = tuple(present[outside].iloc[0])
        raise PartitionWriteError(
            f"{spec.name}: rows of {int(outside.sum())} partition(s) outside those being "
            f"written, e.g. {example}; nothing was written"
        )


def _comparable(spec: PartitionedTable, keys: pd.DataFrame) -> pd.DataFrame:
    """Partition values with dates as Timestamps, so frames and key lists compare equal."""
    converted = keys.copy()
    for column in keys.columns:
        if isinstance(spec.table.c[column].type, sa.Date):
            converted[column] = pd.to_datetime(converted[column]).astype("datetime64[ns]")
    return converted.reset_index(drop=True)


def _csv_chunk(spec: PartitionedTable, rows: pd.DataFrame) -> str:
    """CSV text for COPY: timestamps and dates formatted by NumPy, not row by row."""
    text_columns = {}
    for column in spec.table.columns:
        values = rows[column.name]
        if isinstance(column.type, sa.DateTime):
            text_columns[column.name] = _format_times(values, unit="us")
        elif isinstance(column.type, sa.Date):
            text_columns[column.name] = _format_times(values, unit="D")
        elif isinstance(column.type, sa.Boolean):
            text_columns[column.name] = np.where(values.to_numpy(dtype=bool), "t", "f")
        else:
            text_columns[column.name] = values.to_numpy()
    buffer = io.StringIO()
    pd.DataFrame(text_columns).to_csv(buffer, header=False, index=False, na_rep="")
    return buffer.getvalue()


def _format_times(values: pd.Series, unit: str) -> np.ndarray:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        naive = values.dt.tz_convert("UTC").dt.tz_localize(None)
        suffix = "Z"
    else:
        naive = pd.to_datetime(values)
        suffix = ""
    stamps = naive.to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(stamps, unit=unit)
    if suffix:
        text = np.char.add(text, suffix)
    return np.where(np.isnat(stamps), "", text)


def _typed(spec: PartitionedTable, frame: pd.DataFrame) -> pd.DataFrame:
    for column in spec.table.columns:
        name = column.name
        if isinstance(column.type, sa.DateTime):
            frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[ns, UTC]")
        elif isinstance(column.type, sa.Date):
            frame[name] = pd.to_datetime(frame[name]).astype("datetime64[ns]")
        elif isinstance(column.type, sa.Boolean):
            frame[name] = frame[name].astype(bool)
        elif isinstance(column.type, sa.Integer):
            frame[name] = frame[name].astype("int64")
        elif isinstance(column.type, sa.Float):
            frame[name] = frame[name].astype("float64")
        else:
            frame[name] = frame[name].astype(object)
    return frame
