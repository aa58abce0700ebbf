"""OHLCV candles aggregated from regular-session bars, for all tickers of a run at once.

Buckets are anchored at the session open (a US 1h candle starts at 09:30, 10:30, ...) and carry
their start in UTC; the 1d candle starts at the session open. A candle interval is built only from
bars at most as wide as itself, so minute bars give every interval and daily bars give 1d only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from candle_pipeline.domain.bars import INTERVAL_SECONDS
from candle_pipeline.settings import CANDLE_INTERVALS

CANDLE_COLUMNS = (
    "ticker",
    "trade_date",
    "interval",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "bar_count",
)
NANOS_PER_SECOND = 1_000_000_000
DAILY = "1d"

CANDLE_DTYPES = {
    "ticker": object,
    "trade_date": "datetime64[ns]",
    "interval": object,
    "ts": "datetime64[ns, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "bar_count": "int64",
}


def empty_candles() -> pd.DataFrame:
    return pd.DataFrame(
        {column: pd.Series(dtype=CANDLE_DTYPES[column]) for column in CANDLE_COLUMNS}
    )


def aggregate(bars: pd.DataFrame, intervals: Sequence[str] = CANDLE_INTERVALS) -> pd.DataFrame:
    """Candles of `bars` at each of `intervals`.

    `bars` are regular-session bars of any number of tickers and days with columns ticker,
    trade_date, interval, ts, open, high, low, close, volume and open_utc (their session open).
    The work is a few NumPy passes over all rows: sort once, then for each interval find where a
    (ticker, bucket) run starts and reduce each run with ufunc.reduceat.
    """
    unknown = [name for name in intervals if name not in INTERVAL_SECONDS]
    if unknown:
        raise ValueError(f"unknown candle interval(s): {', '.join(unknown)}")
    if bars.empty:
        return empty_candles()

    ordered = bars.sort_values(["ticker", "ts"], kind="stable")
    ticker_codes, _ = pd.factorize(ordered["ticker"])
    ts = ordered["ts"].to_numpy(dtype="datetime64[ns]").view("int64")
    session_open = ordered["open_utc"].to_numpy(dtype="datetime64[ns]").view("int64")
    bar_width = ordered["interval"].map(INTERVAL_SECONDS).to_numpy()
    if np.isnan(bar_width.astype("float64")).any():
        raise ValueError(f"bars with unknown interval(s): {sorted(set(ordered['interval']))}")
    columns = {name: ordered[name].to_numpy() for name in ("ticker", "trade_date")}
    values = {
        name: ordered[name].to_numpy(dtype="float64")
        for name in ("open", "high", "low", "close", "volume")
    }

    frames = []
    for interval in intervals:
        width = INTERVAL_SECONDS[interval]
        rows = np.flatnonzero(bar_width <= width)
        if rows.size == 0:
            continue
        opens = session_open[rows]
        if interval == DAILY:
            buckets = opens
        else:
            width_ns = width * NANOS_PER_SECOND
            buckets = opens + (ts[rows] - opens) // width_ns * width_ns
        codes = ticker_codes[rows]
        boundary = np.empty(rows.size, dtype=bool)
        boundary[0] = True
        np.not_equal(codes[1:], codes[:-1], out=boundary[1:])
        boundary[1:] |= buckets[1:] != buckets[:-1]
        starts = np.flatnonzero(boundary)
        ends = np.append(starts[1:], rows.size) - 1
        first_rows = rows[starts]
        frames.append(
            pd.DataFrame(
                {
                    "ticker": columns["ticker"][first_rows],
                    "trade_date": columns["trade_date"][first_rows],
                    "interval": interval,
                    "ts": pd.to_datetime(buckets[starts], utc=True),
                    "open": values["open"][first_rows],
                    "high": np.maximum.reduceat(values["high"][rows], starts),
                    "low": np.minimum.reduceat(values["low"][rows], starts),
                    "close": values["close"][rows[ends]],
                    "volume": np.add.reduceat(values["volume"][rows], starts),
                    "bar_count": (ends - starts + 1).astype("int64"),
                }
            )
        )
    if not frames:
        return empty_candles()
    return pd.concat(frames, ignore_index=True).astype(CANDLE_DTYPES)
