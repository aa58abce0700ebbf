"""The pandera contracts of the per-ticker tables: raw quotes, validated quotes and candles.

They are the one place these tables' columns are written down, with their order, pandas types and
whether they may be missing: the warehouse tables (`warehouse/tables.py`) are built from them, the
empty frames and dtypes of the domain follow them, and the assets declare them as their Dagster
types (the UI shows their columns and checks; Dagster validates every output against them).
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
import pandera.pandas as pa

from candle_pipeline.domain.bars import ADJ_CLOSE, INTERVAL_SECONDS, PRICE_COLUMNS, VALUE_COLUMNS
from candle_pipeline.domain.quality import FLAG_COLUMNS, SESSIONS
from candle_pipeline.settings import CANDLE_INTERVALS

KEY = ["ticker", "interval", "ts"]
UTC_TIMESTAMP = pd.DatetimeTZDtype("ns", "UTC")
# A calendar day: midnight, no time zone.
DAY = "datetime64[ns]"
# pandera's name of a text column; pandas holds text as objects.
TEXT = "str"


def _bar_key(intervals: Collection[str]) -> dict[str, pa.Column]:
    return {
        "ticker": pa.Column(str, pa.Check.str_length(min_value=1)),
        "trade_date": pa.Column(DAY),
        "interval": pa.Column(str, pa.Check.isin(list(intervals))),
        "ts": pa.Column(UTC_TIMESTAMP),
    }


def _one_row_per_key(frame: pd.DataFrame) -> bool:
    return not frame.duplicated(subset=KEY).any()


def _valid_means_unflagged(frame: pd.DataFrame) -> pd.Series:
    return frame["is_valid"] == ~frame[list(FLAG_COLUMNS)].any(axis=1)


def _ohlc_consistent(frame: pd.DataFrame) -> pd.Series:
    body = frame[["open", "close"]]
    return (frame["low"] <= body.min(axis=1)) & (frame["high"] >= body.max(axis=1))


_PROVIDED = {
    **_bar_key(INTERVAL_SECONDS),
    **{name: pa.Column(float, nullable=True) for name in VALUE_COLUMNS},
    "source": pa.Column(str),
    "fetched_at": pa.Column(UTC_TIMESTAMP),
}

RawQuotesSchema = pa.DataFrameSchema(
    {
        **_PROVIDED,
        # The provider's split- and dividend-adjusted close (Yahoo's `adjclose`); missing when it
        # has none. Stored next to the raw bars, never used in their place.
        ADJ_CLOSE: pa.Column(float, nullable=True),
    },
    checks=[pa.Check(_one_row_per_key, name="one_bar_per_timestamp")],
    strict=True,
    name="RawQuotesSchema",
    description="Bars as a provider returned them: typed, one per timestamp, values possibly "
    "missing.",
)

ValidatedQuotesSchema = pa.DataFrameSchema(
    {
        **_PROVIDED,
        "session": pa.Column(str, pa.Check.isin(list(SESSIONS))),
        **{name: pa.Column(bool) for name in FLAG_COLUMNS},
        "is_valid": pa.Column(bool),
    },
    checks=[
        pa.Check(_one_row_per_key, name="one_bar_per_timestamp"),
        pa.Check(_valid_means_unflagged, name="valid_means_unflagged"),
    ],
    strict=True,
    name="ValidatedQuotesSchema",
    description="Every raw bar plus its session and quality flags; `is_valid` agrees with the "
    "flags.",
)

CandlesSchema = pa.DataFrameSchema(
    {
        **_bar_key(CANDLE_INTERVALS),
        **{name: pa.Column(float, pa.Check.gt(0)) for name in PRICE_COLUMNS},
        "volume": pa.Column(float, pa.Check.ge(0)),
        "bar_count": pa.Column(int, pa.Check.ge(1)),
    },
    checks=[
        pa.Check(_ohlc_consistent, name="ohlc_consistent"),
        pa.Check(_one_row_per_key, name="one_candle_per_start"),
    ],
    strict=True,
    name="CandlesSchema",
    description="OHLCV candles of valid regular-session bars: consistent prices, at least one bar "
    "each.",
)


def pandas_dtypes(schema: pa.DataFrameSchema) -> dict[str, object]:
    """The pandas dtype of each column, in table order (text as `object`, as pandas holds it)."""
    return {
        name: object if str(column.dtype) == TEXT else str(column.dtype)
        for name, column in schema.columns.items()
    }
