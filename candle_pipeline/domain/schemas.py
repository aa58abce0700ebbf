"""The pandera contracts of the per-ticker tables: raw quotes, validated quotes and candles.

The assets declare them as their Dagster types (the UI shows their columns and checks), and
Dagster validates every output against them.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from candle_pipeline.domain.bars import INTERVAL_SECONDS
from candle_pipeline.domain.candles import CANDLE_INTERVALS
from candle_pipeline.domain.quality import FLAG_COLUMNS, SESSIONS

KEY = ["ticker", "interval", "ts"]


class RawQuotesSchema(pa.DataFrameModel):
    """Bars as a provider returned them: typed, one per timestamp, values possibly missing.

    Not strict: a provider may add columns of its own (e.g. an adjusted close).
    """

    ticker: Series[str] = pa.Field(str_length={"min_value": 1})
    trade_date: Series[pd.Timestamp]
    interval: Series[str] = pa.Field(isin=list(INTERVAL_SECONDS))
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    open: Series[float] = pa.Field(nullable=True)
    high: Series[float] = pa.Field(nullable=True)
    low: Series[float] = pa.Field(nullable=True)
    close: Series[float] = pa.Field(nullable=True)
    volume: Series[float] = pa.Field(nullable=True)
    source: Series[str]
    fetched_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})

    @pa.dataframe_check
    def one_bar_per_timestamp(cls, frame: pd.DataFrame) -> bool:  # noqa: N805 - pandera's class
        return not frame.duplicated(subset=KEY).any()


class ValidatedQuotesSchema(RawQuotesSchema):
    """Every raw bar plus its session and quality flags; `is_valid` agrees with the flags."""

    session: Series[str] = pa.Field(isin=list(SESSIONS))
    flag_missing: Series[bool]
    flag_ohlc: Series[bool]
    flag_price: Series[bool]
    flag_volume: Series[bool]
    flag_outside_day: Series[bool]
    flag_spike: Series[bool]
    flag_stale: Series[bool]
    is_valid: Series[bool]

    @pa.dataframe_check
    def valid_means_unflagged(cls, frame: pd.DataFrame) -> pd.Series:  # noqa: N805
        return frame["is_valid"] == ~frame[list(FLAG_COLUMNS)].any(axis=1)

    class Config:
        strict = True


class CandlesSchema(pa.DataFrameModel):
    """OHLCV candles of valid regular-session bars: consistent prices, at least one bar each."""

    ticker: Series[str] = pa.Field(str_length={"min_value": 1})
    trade_date: Series[pd.Timestamp]
    interval: Series[str] = pa.Field(isin=list(CANDLE_INTERVALS))
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    open: Series[float] = pa.Field(gt=0)
    high: Series[float] = pa.Field(gt=0)
    low: Series[float] = pa.Field(gt=0)
    close: Series[float] = pa.Field(gt=0)
    volume: Series[float] = pa.Field(ge=0)
    bar_count: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check
    def ohlc_consistent(cls, frame: pd.DataFrame) -> pd.Series:  # noqa: N805
        body = frame[["open", "close"]]
        return (frame["low"] <= body.min(axis=1)) & (frame["high"] >= body.max(axis=1))

    @pa.dataframe_check
    def one_candle_per_start(cls, frame: pd.DataFrame) -> bool:  # noqa: N805
        return not frame.duplicated(subset=KEY).any()

    class Config:
        strict = True
