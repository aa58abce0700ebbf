"""OHLCV candles aggregated from regular-session bars, for all tickers of a run at once.

Buckets are anchored at the session open (a US 1h candle starts at 09:30, 10:30, ...) and carry
their start in UTC; the 1d candle starts at the session open. A candle interval is built only from
bars at most as wide as itself, so minute bars give every interval and daily bars give 1d only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from candle_pipeline.domain.bars import BAR_COLUMNS, BAR_DTYPES, INTERVAL_SECONDS

# Candle intervals, finest first; each is aggregated only from raw bars that are finer.
CANDLE_INTERVALS = ("5m", "15m", "30m", "1h", "4h", "1d")

# A candle is a bar of its interval, with the number of bars it was built from.
CANDLE_COLUMNS = (*BAR_COLUMNS, "bar_count")
NANOS_PER_SECOND = 1_000_000_000
DAILY = "1d"

CANDLE_DTYPES = {**{column: BAR_DTYPES[column] for column in BAR_COLUMNS}, "bar_count": "int64"}


def empty_candles() -> pd.DataFrame:
    return pd.DataFrame(
        {column: pd.Series(dtype=CANDLE_DTYPES[column]) for column in CANDLE_COLUMNS}
    )


@dataclass(frozen=True)
class _Level:
    """Bars or candles in (ticker, time) order, as arrays; `first_row` points into the input."""

    width: int
    codes: np.ndarray
    ts: np.ndarray
    session_open: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    first_row: np.ndarray


def aggregate(bars: pd.DataFrame, intervals: Sequence[str] = CANDLE_INTERVALS) -> pd.DataFrame:
    """Candles of `bars` at each of `intervals`.

    `bars` are regular-session bars of any number of tickers and days with columns ticker,
    trade_date, interval, ts, open, high, low, close, volume and open_utc (their session open).

    All tickers are aggregated at once, in a few NumPy passes: the bars are put in (ticker, time)
    order (unless they already are), the finest interval is reduced from them with
    `ufunc.reduceat` over runs of equal (ticker, bucket), and each coarser interval is reduced
    from the candles of a finer one whose buckets nest in it (5m -> 15m -> 30m -> 1h -> 1d), so
    only the first pass touches every bar. Bars wider than an interval never enter it.
    """
    unknown = [name for name in intervals if name not in INTERVAL_SECONDS]
    if unknown:
        raise ValueError(f"unknown candle interval(s): {', '.join(unknown)}")
    if bars.empty or not intervals:
        return empty_candles()

    codes, tickers = _run_factorize(bars["ticker"].to_numpy())
    ts = bars["ts"].to_numpy(dtype="datetime64[ns]").view("int64")
    order = _ticker_time_order(codes, ts)
    interval_codes, interval_names = _run_factorize(bars["interval"].to_numpy())
    unknown_bars = [name for name in interval_names if name not in INTERVAL_SECONDS]
    if unknown_bars:
        raise ValueError(f"bars with unknown interval(s): {sorted(map(str, unknown_bars))}")
    bar_width = np.array([INTERVAL_SECONDS[name] for name in interval_names])[interval_codes]
    raw = _Level(
        width=0,
        codes=codes[order],
        ts=ts[order],
        session_open=bars["open_utc"].to_numpy(dtype="datetime64[ns]").view("int64")[order],
        open=bars["open"].to_numpy(dtype="float64")[order],
        high=bars["high"].to_numpy(dtype="float64")[order],
        low=bars["low"].to_numpy(dtype="float64")[order],
        close=bars["close"].to_numpy(dtype="float64")[order],
        volume=bars["volume"].to_numpy(dtype="float64")[order],
        count=np.ones(len(order), dtype="int64"),
        first_row=order,
    )
    raw_width = bar_width[order]
    raw_widths = set(np.unique(raw_width).tolist())

    built: list[tuple[str, _Level]] = []
    for interval in sorted(intervals, key=INTERVAL_SECONDS.__getitem__):
        width = INTERVAL_SECONDS[interval]
        source = _finest_source(raw, raw_width, raw_widths, built, width)
        if source is not None and source.codes.size:
            built.append((interval, _reduce(source, width, interval == DAILY)))
    built = [(interval, level) for interval, level in built if level.codes.size]
    if not built:
        return empty_candles()
    by_interval = dict(built)
    levels = [(name, by_interval[name]) for name in intervals if name in by_interval]
    first_rows = np.concatenate([level.first_row for _, level in levels])
    return pd.DataFrame(
        {
            "ticker": tickers[np.concatenate([level.codes for _, level in levels])],
            "trade_date": bars["trade_date"].to_numpy(dtype="datetime64[ns]")[first_rows],
            "interval": np.repeat(
                np.array([name for name, _ in levels], dtype=object),
                [level.codes.size for _, level in levels],
            ),
            "ts": pd.to_datetime(np.concatenate([level.ts for _, level in levels]), utc=True),
            **{
                name: np.concatenate([getattr(level, name) for _, level in levels])
                for name in ("open", "high", "low", "close", "volume")
            },
            "bar_count": np.concatenate([level.count for _, level in levels]),
        }
    )


def _run_factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pd.factorize for columns that come in runs of equal values (tickers, intervals): only
    the first value of each run is hashed."""
    if values.size == 0:
        return np.zeros(0, dtype="int64"), np.array([], dtype=object)
    changes = np.empty(values.size, dtype=bool)
    changes[0] = True
    np.not_equal(values[1:], values[:-1], out=changes[1:])
    heads = np.flatnonzero(changes)
    head_codes, uniques = pd.factorize(values[heads], sort=False)
    return head_codes[np.cumsum(changes) - 1], np.asarray(uniques, dtype=object)


def _ticker_time_order(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row order by (ticker, time); the identity when the bars already come that way."""
    in_order = np.all(codes[1:] >= codes[:-1]) and np.all(
        (codes[1:] != codes[:-1]) | (ts[1:] >= ts[:-1])
    )
    if in_order:
        return np.arange(codes.size)
    return np.lexsort((ts, codes))


def _finest_source(
    raw: _Level,
    raw_width: np.ndarray,
    raw_widths: set[int],
    built: list[tuple[str, _Level]],
    width: int,
) -> _Level | None:
    """What an interval of `width` is reduced from: the widest built level that nests in it, or
    the raw bars when none does or when raw bars wider than that level also belong to it."""
    for _, level in reversed(built):
        nests = width == INTERVAL_SECONDS[DAILY] or width % level.width == 0
        if nests and not any(level.width < bar <= width for bar in raw_widths):
            return level
    rows = np.flatnonzero(raw_width <= width)
    if rows.size == 0:
        return None
    if rows.size == raw_width.size:
        return raw
    return _take(raw, rows)


def _take(level: _Level, rows: np.ndarray) -> _Level:
    return _Level(
        width=level.width,
        **{
            name: getattr(level, name)[rows]
            for name in (
                "codes",
                "ts",
                "session_open",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "count",
                "first_row",
            )
        },
    )


def _reduce(source: _Level, width: int, daily: bool) -> _Level:
    """Candles of `width` seconds from `source`, in (ticker, time) order like their source."""
    opens = source.session_open
    if daily:
        buckets = opens
    else:
        width_ns = width * NANOS_PER_SECOND
        buckets = opens + (source.ts - opens) // width_ns * width_ns
    boundary = np.empty(source.codes.size, dtype=bool)
    boundary[0] = True
    np.not_equal(source.codes[1:], source.codes[:-1], out=boundary[1:])
    boundary[1:] |= buckets[1:] != buckets[:-1]
    starts = np.flatnonzero(boundary)
    ends = np.append(starts[1:], source.codes.size) - 1
    return _Level(
        width=width,
        codes=source.codes[starts],
        ts=buckets[starts],
        session_open=opens[starts],
        open=source.open[starts],
        high=np.maximum.reduceat(source.high, starts),
        low=np.minimum.reduceat(source.low, starts),
        close=source.close[ends],
        volume=np.add.reduceat(source.volume, starts),
        count=np.add.reduceat(source.count, starts),
        first_row=source.first_row[starts],
    )
