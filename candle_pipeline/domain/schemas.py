"""The pandera contracts of the tables written from DataFrames: raw quotes, validated quotes,
candles, market timings, corporate actions and ticker-days.

They are the one place these tables' columns are written down, with their order, pandas types,
whether they may be missing and the columns that identify a row (`unique`, the primary key): the
warehouse tables (`warehouse/tables.py`) are built from them and the domain's column lists and
dtypes are tested against them. The per-ticker assets declare theirs as their Dagster types (the UI
shows their columns and checks; Dagster validates every output against them).
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
import pandera.pandas as pa

from candle_pipeline.domain.bars import ADJ_CLOSE, INTERVAL_SECONDS, PRICE_COLUMNS, VALUE_COLUMNS
from candle_pipeline.domain.candles import CANDLE_INTERVALS
from candle_pipeline.domain.quality import FLAG_COLUMNS, SESSIONS

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
    unique=KEY,
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
    checks=[pa.Check(_valid_means_unflagged, name="valid_means_unflagged")],
    unique=KEY,
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
    checks=[pa.Check(_ohlc_consistent, name="ohlc_consistent")],
    unique=KEY,
    strict=True,
    name="CandlesSchema",
    description="OHLCV candles of valid regular-session bars: consistent prices, at least one bar "
    "each.",
)

MarketTimingsSchema = pa.DataFrameSchema(
    {
        "mic": pa.Column(str, pa.Check.str_length(min_value=1)),
        "session_date": pa.Column(DAY),
        "is_open": pa.Column(bool),
        # The regular session in UTC, and its lunch break; missing on a closed day (or no break).
        **{
            name: pa.Column(UTC_TIMESTAMP, nullable=True)
            for name in ("open_utc", "close_utc", "break_start_utc", "break_end_utc")
        },
        "early_close": pa.Column(bool),
        "expected_minute_bars": pa.Column(int, pa.Check.ge(0)),
    },
    unique=["mic", "session_date"],
    strict=True,
    name="MarketTimingsSchema",
    description="Per exchange (MIC) and calendar day: open or closed, and its regular session.",
)

CorporateActionsSchema = pa.DataFrameSchema(
    {
        "ticker": pa.Column(str, pa.Check.str_length(min_value=1)),
        "ex_date": pa.Column(DAY),
        # Cash per share in the quote currency; new shares per old share. A day with only one of
        # them misses the other.
        "dividend": pa.Column(float, nullable=True),
        "split_ratio": pa.Column(float, nullable=True),
        "source": pa.Column(str),
        "fetched_at": pa.Column(UTC_TIMESTAMP),
        # The dividend's currency (missing: the quote currency, not reported by the provider).
        "currency": pa.Column(str, nullable=True),
        # The raw close of the session before the ex-date, the reference of a dividend's return
        # step.
        "reference_close": pa.Column(float, nullable=True),
        # When the warehouse first stored the action: what `as_of` readers compare with.
        "first_seen": pa.Column(UTC_TIMESTAMP),
    },
    unique=["ticker", "ex_date"],
    strict=True,
    name="CorporateActionsSchema",
    description="Splits and dividends per ticker and ex-date, as stored.",
)

TickerDaysSchema = pa.DataFrameSchema(
    {
        "ticker": pa.Column(str, pa.Check.str_length(min_value=1)),
        "trade_date": pa.Column(DAY),
        # The exchange the ticker-day was judged on; data judged on another calendar is redone.
        "exchange": pa.Column(str),
        "status": pa.Column(str),
        # Provider fetches of this ticker-day so far.
        "attempts": pa.Column(int, pa.Check.ge(0)),
        "last_error": pa.Column(str, nullable=True),
        "retry_after": pa.Column(UTC_TIMESTAMP, nullable=True),
        "quality_score": pa.Column(float, nullable=True),
        # Raw rows stored for the ticker-day, and what the warning rules found in them.
        **{
            name: pa.Column(int, pa.Check.ge(0))
            for name in ("rows", "spike_rows", "stale_rows", "gaps")
        },
        "source": pa.Column(str, nullable=True),
        "fetched_at": pa.Column(UTC_TIMESTAMP, nullable=True),
        "updated_at": pa.Column(UTC_TIMESTAMP),
        "run_id": pa.Column(str),
        # Why the ticker's provider did not serve the stored data when a fallback source
        # (`source`) did; missing when its own provider served it.
        "fallback_reason": pa.Column(str, nullable=True),
        # The start of the latest bar stored: where an intraday refresh of the day resumes.
        "last_bar_at": pa.Column(UTC_TIMESTAMP, nullable=True),
    },
    unique=["ticker", "trade_date"],
    strict=True,
    name="TickerDaysSchema",
    description="Per watched ticker and calendar day: where its data stands (the work queue of "
    "the day partitions).",
)


def pandas_dtypes(schema: pa.DataFrameSchema) -> dict[str, object]:
    """The pandas dtype of each column, in table order (text as `object`, as pandas holds it)."""
    return {
        name: object if str(column.dtype) == TEXT else str(column.dtype)
        for name, column in schema.columns.items()
    }
