"""Cross-checking two sources: the daily OHLCV of each ticker-day from the bars each served, and
the ticker-days whose closes differ by more than a tolerance.

Both sides are reduced to days the same way (first open, highest high, lowest low, last close,
summed volume of the bars as served), so a daily bar compares with a daily bar and minute bars
with minute bars alike. The difference is relative to the reference's close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

DAY_KEY = ("ticker", "trade_date")
DAILY_COLUMNS = (*DAY_KEY, "source", "open", "high", "low", "close", "volume")
COMPARISON_COLUMNS = (
    *DAY_KEY,
    "source",
    "close",
    "reference_source",
    "reference_close",
    "difference",
    "compared",
    "mismatch",
)


@dataclass(frozen=True)
class Mismatch:
    """A ticker-day whose two sources' closes differ by more than the tolerance."""

    ticker: str
    trade_date: date
    source: str
    close: float
    reference_source: str
    reference_close: float
    difference: float

    def describe(self) -> str:
        return (
            f"{self.ticker} {self.trade_date}: close {self.close:g} from {self.source}, "
            f"{self.reference_close:g} from {self.reference_source} "
            f"({self.difference:.2%} apart)"
        )


def daily_ohlcv(bars: pd.DataFrame) -> pd.DataFrame:
    """Per ticker-day and source, the day's OHLCV of the bars (`ts` orders them)."""
    if bars.empty:
        return pd.DataFrame(columns=list(DAILY_COLUMNS))
    ordered = bars.assign(trade_date=pd.to_datetime(bars["trade_date"]).dt.date).sort_values("ts")
    return (
        ordered.groupby([*DAY_KEY, "source"], sort=True)
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        .reset_index()
        .loc[:, list(DAILY_COLUMNS)]
    )


def compare_closes(
    checked: pd.DataFrame, reference: pd.DataFrame, tolerance: float
) -> pd.DataFrame:
    """Each ticker-day of `checked` (daily OHLCV) with the reference's close of the same day
    (COMPARISON_COLUMNS): `difference` relative to the reference close, `compared` False where
    the reference has no bar that day, `mismatch` where the difference is above `tolerance`."""
    if not tolerance > 0:
        raise ValueError(f"the tolerance must be greater than 0, not {tolerance}")
    right = reference.loc[:, [*DAY_KEY, "source", "close"]].rename(
        columns={"source": "reference_source", "close": "reference_close"}
    )
    merged = checked.loc[:, [*DAY_KEY, "source", "close"]].merge(
        right, on=list(DAY_KEY), how="left"
    )
    close = merged["close"].astype(float)
    reference_close = merged["reference_close"].astype(float)
    gap = (close - reference_close).abs()
    with np.errstate(divide="ignore", invalid="ignore"):
        # Equal closes agree even at zero; a missing reference close stays NaN.
        merged["difference"] = np.where(gap == 0, 0.0, gap / reference_close.abs())
    merged["compared"] = reference_close.notna()
    merged["mismatch"] = merged["compared"] & (merged["difference"] > tolerance)
    return merged.sort_values(list(DAY_KEY)).reset_index(drop=True).loc[:, list(COMPARISON_COLUMNS)]


def mismatches(comparison: pd.DataFrame) -> list[Mismatch]:
    """The mismatching ticker-days of a comparison, in ticker-day order."""
    rows = comparison[comparison["mismatch"]]
    return [
        Mismatch(
            ticker=row.ticker,
            trade_date=row.trade_date,
            source=row.source,
            close=float(row.close),
            reference_source=row.reference_source,
            reference_close=float(row.reference_close),
            difference=float(row.difference),
        )
        for row in rows.itertuples(index=False)
    ]
