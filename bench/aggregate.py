"""Figure 2: candles of one day of minute bars for many tickers, to every interval.

The project's `domain.candles.aggregate` (all tickers at once) against the old way: a loop over
tickers, each resampled with pandas (`resample(origin=session open)`) to each interval. Both get
the same bars, with their session open attached as the candles asset does; the bench checks they
agree before it prints a ratio.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from bench.common import Report, best_of, section, spread, synthetic_raw, tickers
from candle_pipeline.domain.bars import INTERVAL_SECONDS
from candle_pipeline.domain.candles import CANDLE_COLUMNS, CANDLE_INTERVALS, aggregate
from candle_pipeline.domain.sessions import ExchangeDirectory, attach_sessions, market_timings
from candle_pipeline.providers.synthetic import DEFAULT_MIC

SECTION = "aggregate"
DAY = date(2024, 1, 3)
SECONDS_PER_MINUTE = 60
DAILY = "1d"
AGGREGATIONS = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def run(report: Report, ticker_count: int, repeats: int) -> None:
    section(f"2. candle aggregation: {ticker_count} tickers x one day of minute bars")
    raw = synthetic_raw(tickers(ticker_count), [DAY], "1m")
    timings = market_timings([DEFAULT_MIC], DAY, DAY)
    bars = attach_sessions(raw, timings, ExchangeDirectory(default=DEFAULT_MIC, by_ticker={}))

    project, project_times = best_of(repeats, lambda: aggregate(bars, CANDLE_INTERVALS))
    loop, loop_times = best_of(repeats, lambda: resample_loop(bars))
    _check_same(aggregate(bars, CANDLE_INTERVALS), resample_loop(bars))

    report.add(SECTION, "minute bars", len(bars), "rows", f"{ticker_count} tickers")
    report.add(SECTION, "project aggregate, all intervals", project, "s", spread(project_times))
    report.add(SECTION, "per-ticker resample loop", loop, "s", spread(loop_times))
    report.add(SECTION, "loop / project", loop / project, "x", "target >= 50")


def resample_loop(bars: pd.DataFrame) -> pd.DataFrame:
    """The old way: ticker by ticker, interval by interval, pandas resample from the open."""
    frames = []
    for ticker, group in bars.groupby("ticker", sort=False):
        indexed = group.set_index("ts")
        session_open = group["open_utc"].iloc[0]
        trade_date = group["trade_date"].iloc[0]
        for interval in CANDLE_INTERVALS:
            seconds = INTERVAL_SECONDS[interval]
            rule = "1D" if interval == DAILY else f"{seconds // SECONDS_PER_MINUTE}min"
            resampler = indexed.resample(rule, origin=session_open, label="left", closed="left")
            candles = resampler.agg(AGGREGATIONS)
            candles["bar_count"] = resampler["close"].count()
            candles = candles[candles["bar_count"] > 0].reset_index()
            if interval == DAILY:
                candles["ts"] = session_open
            frames.append(candles.assign(ticker=ticker, trade_date=trade_date, interval=interval))
    return pd.concat(frames, ignore_index=True)[list(CANDLE_COLUMNS)]


def _check_same(project: pd.DataFrame, loop: pd.DataFrame) -> None:
    keys = ["ticker", "interval", "ts"]
    left = project.sort_values(keys).reset_index(drop=True)
    right = loop.sort_values(keys).reset_index(drop=True)
    if len(left) != len(right) or not (left[keys] == right[keys]).all().all():
        raise AssertionError("aggregate and the resample loop produced different candles")
    for column in ("open", "high", "low", "close", "volume", "bar_count"):
        if not np.allclose(left[column].to_numpy(float), right[column].to_numpy(float)):
            raise AssertionError(f"aggregate and the resample loop disagree on {column}")
