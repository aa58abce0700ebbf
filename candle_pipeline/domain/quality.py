"""Quote validation: the pandera contracts of our tables and the per-row quality flags.

Validation never drops a row: every raw bar comes out with its session tag and one boolean flag
per rule (True marks a problem), and `is_valid` is True only when no flag is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from candle_pipeline.domain.bars import PRICE_COLUMNS, RAW_COLUMNS
from candle_pipeline.domain.sessions import (
    SESSION_OUTSIDE,
    SESSION_POST,
    SESSION_PRE,
    SESSION_REGULAR,
    ExchangeDirectory,
    attach_sessions,
    session_tags,
)

SESSIONS = (SESSION_REGULAR, SESSION_PRE, SESSION_POST, SESSION_OUTSIDE)


def _missing_values(bars: pd.DataFrame) -> pd.Series:
    return bars[[*PRICE_COLUMNS, "volume"]].isna().any(axis=1)


def _ohlc_inconsistent(bars: pd.DataFrame) -> pd.Series:
    body_low = bars[["open", "close"]].min(axis=1)
    body_high = bars[["open", "close"]].max(axis=1)
    return (bars["low"] > body_low) | (bars["high"] < body_high) | (bars["low"] > bars["high"])


def _non_positive_price(bars: pd.DataFrame) -> pd.Series:
    return (bars[list(PRICE_COLUMNS)] <= 0).any(axis=1)


def _negative_volume(bars: pd.DataFrame) -> pd.Series:
    return bars["volume"] < 0


# Each rule marks the rows that break it; its name becomes the column flag_<name>.
ROW_RULES: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = {
    "missing": _missing_values,
    "ohlc": _ohlc_inconsistent,
    "price": _non_positive_price,
    "volume": _negative_volume,
}
FLAG_COLUMNS = tuple(f"flag_{name}" for name in ROW_RULES)
VALIDATED_COLUMNS = (*RAW_COLUMNS, "session", *FLAG_COLUMNS, "is_valid")


class RawQuotesSchema(pa.DataFrameModel):
    """Bars as a provider returned them: typed, keyed, values possibly missing."""

    ticker: Series[str] = pa.Field(str_length={"min_value": 1})
    trade_date: Series[pd.Timestamp]
    interval: Series[str]
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    open: Series[float] = pa.Field(nullable=True)
    high: Series[float] = pa.Field(nullable=True)
    low: Series[float] = pa.Field(nullable=True)
    close: Series[float] = pa.Field(nullable=True)
    volume: Series[float] = pa.Field(nullable=True)
    source: Series[str]
    fetched_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})

    @pa.dataframe_check
    def unique_bars(cls, frame: pd.DataFrame) -> bool:  # noqa: N805 - pandera passes the class
        return not frame.duplicated(subset=["ticker", "interval", "ts"]).any()

    class Config:
        strict = True


class ValidatedQuotesSchema(RawQuotesSchema):
    """Raw bars plus their session and quality flags; `is_valid` agrees with the flags."""

    session: Series[str] = pa.Field(isin=list(SESSIONS))
    flag_missing: Series[bool]
    flag_ohlc: Series[bool]
    flag_price: Series[bool]
    flag_volume: Series[bool]
    is_valid: Series[bool]

    @pa.dataframe_check
    def valid_means_unflagged(cls, frame: pd.DataFrame) -> pd.Series:  # noqa: N805
        return frame["is_valid"] == ~frame[list(FLAG_COLUMNS)].any(axis=1)


@dataclass(frozen=True)
class QualityReport:
    """What validation found in one partition (or a whole run)."""

    rows: int
    valid_rows: int
    flag_counts: Mapping[str, int] = field(default_factory=dict)
    session_counts: Mapping[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            **{f"flagged_{name}": count for name, count in self.flag_counts.items()},
            **{f"{name}_bars": count for name, count in self.session_counts.items()},
        }


def validate_quotes(
    raw: pd.DataFrame, timings: pd.DataFrame, exchanges: ExchangeDirectory
) -> pd.DataFrame:
    """Every raw bar with its session tag, one flag per rule and `is_valid`."""
    RawQuotesSchema.validate(raw)
    with_sessions = attach_sessions(raw, timings, exchanges)
    flags = {f"flag_{name}": rule(raw).to_numpy(dtype=bool) for name, rule in ROW_RULES.items()}
    validated = raw.loc[:, list(RAW_COLUMNS)].assign(
        session=session_tags(with_sessions).to_numpy(), **flags
    )
    validated["is_valid"] = ~validated[list(FLAG_COLUMNS)].any(axis=1)
    return ValidatedQuotesSchema.validate(validated)


def quality_report(validated: pd.DataFrame) -> QualityReport:
    return QualityReport(
        rows=len(validated),
        valid_rows=int(validated["is_valid"].sum()),
        flag_counts={name: int(validated[f"flag_{name}"].sum()) for name in ROW_RULES},
        session_counts={
            name: int(count) for name, count in validated["session"].value_counts().items()
        },
    )
