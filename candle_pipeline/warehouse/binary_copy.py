"""DataFrames encoded as PostgreSQL's binary COPY format with NumPy, without a loop over rows.

The format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4) is a header,
then per row a 16-bit field count and per field a 32-bit byte length (-1 for NULL) followed by
the value in network byte order; a 16-bit -1 ends the data. Fixed-width types (float8, int4, bool,
date, timestamptz) are a fixed number of bytes, so rows whose text values have the same byte
lengths and whose NULLs sit in the same columns all share one layout: one NumPy structured array
per layout, filled column by column, gives their bytes in one `tobytes()`. Real tables have few
layouts (a handful of ticker lengths), and COPY does not care in which order rows arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
NULL_LENGTH = -1
# PostgreSQL counts dates and timestamps from 2000-01-01; NumPy from 1970-01-01.
PG_EPOCH_DAYS = 10_957
PG_EPOCH_MICROS = PG_EPOCH_DAYS * 86_400 * 1_000_000
NANOS_PER_MICRO = 1_000
INT4_RANGE = (-(2**31), 2**31 - 1)


class BinaryCopyError(ValueError):
    """A column that cannot be encoded for its SQL type; the message names it."""


@dataclass(frozen=True)
class _Column:
    """One column ready to lay out: fixed-width values or text codes, and where NULLs are."""

    name: str
    wire: str  # NumPy dtype of the value on the wire, e.g. ">f8", or "text"
    values: np.ndarray  # fixed-width values, or codes into `texts` for text
    nulls: np.ndarray | None  # bool per row, None when the column has no NULL
    texts: np.ndarray | None = None  # text: UTF-8 bytes of each distinct value
    text_lengths: np.ndarray | None = None  # text: byte length of each distinct value


def encode(table: sa.Table, frame: pd.DataFrame) -> Iterator[bytes]:
    """The binary COPY stream of `frame` (columns in `table`'s order): header, rows, trailer."""
    yield HEADER
    yield from encode_rows(table, frame)
    yield TRAILER


def encode_rows(table: sa.Table, frame: pd.DataFrame) -> Iterator[bytes]:
    """The rows of `frame` in binary COPY format, one block per layout, no header or trailer."""
    if frame.empty:
        return
    columns = [_prepare(column, frame[column.name]) for column in table.columns]
    layouts, order, bounds = _group_by_layout(columns, len(frame))
    for layout, start, end in zip(layouts, bounds[:-1], bounds[1:], strict=True):
        yield _encode_layout(columns, layout, order[start:end])


def _prepare(column: sa.Column, series: pd.Series) -> _Column:
    kind = column.type
    name = column.name
    if isinstance(kind, sa.DateTime):
        return _timestamps(name, series)
    if isinstance(kind, sa.Date):
        if not pd.api.types.is_datetime64_dtype(series.dtype):
            series = pd.to_datetime(series)
        days = series.to_numpy(dtype="datetime64[D]")
        nulls = np.isnat(days)
        values = days.view("int64") - PG_EPOCH_DAYS
        return _Column(name, ">i4", values.astype("int32"), nulls if nulls.any() else None)
    if isinstance(kind, sa.Float):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        nulls = np.isnan(values)
        return _Column(name, ">f8", values, nulls if nulls.any() else None)
    if isinstance(kind, sa.Boolean):
        _refuse_nulls(name, series)
        return _Column(name, "u1", series.to_numpy(dtype=bool).astype("uint8"), None)
    if isinstance(kind, sa.Integer):
        _refuse_nulls(name, series)
        values = series.to_numpy(dtype="int64")
        if len(values) and (values.min() < INT4_RANGE[0] or values.max() > INT4_RANGE[1]):
            raise BinaryCopyError(f"column {name} holds values beyond a 32-bit integer")
        return _Column(name, ">i4", values.astype("int32"), None)
    if isinstance(kind, sa.Text):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        encoded = [str(value).encode() for value in uniques]
        nulls = codes < 0
        return _Column(
            name,
            "text",
            np.where(nulls, 0, codes),
            nulls if nulls.any() else None,
            texts=np.array(encoded or [b""], dtype=object),
            text_lengths=np.array([len(value) for value in encoded] or [0], dtype="int64"),
        )
    raise BinaryCopyError(f"column {name}: no binary encoding for SQL type {kind}")


def _timestamps(name: str, series: pd.Series) -> _Column:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        nanos = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        nanos = series.to_numpy(dtype="datetime64[ns]")
    elif series.isna().all():
        nanos = np.full(len(series), np.datetime64("NaT"), dtype="datetime64[ns]")
    else:
        raise BinaryCopyError(f"column {name} must hold timestamps, not {series.dtype}")
    nulls = np.isnat(nanos)
    micros = nanos.view("int64") // NANOS_PER_MICRO - PG_EPOCH_MICROS
    return _Column(name, ">i8", micros, nulls if nulls.any() else None)


def _refuse_nulls(name: str, series: pd.Series) -> None:
    if series.isna().any():
        raise BinaryCopyError(f"column {name} has {int(series.isna().sum())} missing value(s)")


def _group_by_layout(
    columns: Sequence[_Column], rows: int
) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """Rows grouped by layout: per column its text byte length, or -1 for NULL, or 0.

    Returns the layouts, an order of the rows that puts each layout's rows together, and the
    bounds of each layout's run in that order.
    """
    key = np.zeros(rows, dtype="int64")
    factors = []
    for column in columns:
        if column.texts is not None:
            per_row = column.text_lengths[column.values]
        else:
            per_row = np.zeros(rows, dtype="int64")
        if column.nulls is not None:
            per_row = np.where(column.nulls, NULL_LENGTH, per_row)
        codes, uniques = pd.factorize(per_row)
        if len(uniques) > 1:
            key = key * len(uniques) + codes
        factors.append((codes, uniques))
    layout_codes, _ = pd.factorize(key)
    order = np.argsort(layout_codes, kind="stable")
    counts = np.bincount(layout_codes)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    firsts = order[bounds[:-1]]
    layouts = [
        tuple(int(uniques[codes[row]]) for codes, uniques in factors) for row in firsts.tolist()
    ]
    return layouts, order, bounds


def _encode_layout(columns: Sequence[_Column], layout: tuple[int, ...], rows: np.ndarray) -> bytes:
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for position, (column, length) in enumerate(zip(columns, layout, strict=True)):
        fields.append((f"l{position}", ">i4"))
        if length == NULL_LENGTH:
            continue
        wire = f"S{length}" if column.wire == "text" else column.wire
        if wire != "S0":
            fields.append((f"v{position}", wire))
    packed = np.empty(rows.size, dtype=np.dtype(fields))
    packed["count"] = len(columns)
    for position, (column, length) in enumerate(zip(columns, layout, strict=True)):
        if length == NULL_LENGTH:
            packed[f"l{position}"] = NULL_LENGTH
            continue
        if column.wire == "text":
            packed[f"l{position}"] = length
            if length:
                text_values = np.array(list(column.texts), dtype=f"S{length}")
                packed[f"v{position}"] = text_values[column.values[rows]]
            continue
        packed[f"l{position}"] = np.dtype(column.wire).itemsize
        packed[f"v{position}"] = column.values[rows]
    return packed.tobytes()
