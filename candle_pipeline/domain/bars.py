"""The canonical shape of a price bar, and the structural checks every provider's output passes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd

KEY_COLUMNS = ("ticker", "trade_date", "interval", "ts")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
BAR_COLUMNS = (*KEY_COLUMNS, *VALUE_COLUMNS)
RAW_COLUMNS = (*BAR_COLUMNS, "source", "fetched_at")
# The close adjusted for later splits and dividends, as the provider computed it (when it does);
# stored next to the raw bars, never used in their place.
ADJ_CLOSE = "adj_close"
STORED_RAW_COLUMNS = (*RAW_COLUMNS, ADJ_CLOSE)

# Bar widths by interval name; a candle interval is built only from bars at most as wide.
INTERVAL_SECONDS = {
    "1m": 60,
    "2m": 120,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}

# Why a returned row is not stored, in the order the reasons are tested.
DROP_OUTSIDE_DAYS = "outside_requested_days"
DROP_SESSION_IN_PROGRESS = "session_in_progress"
DROP_DUPLICATE = "duplicate_timestamp"
DROP_ALL_NAN = "all_nan"
DROP_REASONS = (DROP_OUTSIDE_DAYS, DROP_SESSION_IN_PROGRESS, DROP_DUPLICATE, DROP_ALL_NAN)

BAR_DTYPES = {
    "ticker": object,
    "trade_date": "datetime64[ns]",
    "interval": object,
    "ts": "datetime64[ns, UTC]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "source": object,
    "fetched_at": "datetime64[ns, UTC]",
    ADJ_CLOSE: "float64",
}


class BarsError(ValueError):
    """Provider output that cannot be stored: the message names where it came from and why."""


def empty_bars(columns: Sequence[str] = BAR_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=BAR_DTYPES[column]) for column in columns})


def check_bars(frame: pd.DataFrame, origin: str, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The bars in canonical columns and types, or a BarsError naming `origin` and the problem.

    Missing columns, values that are not numbers, timestamps without a time zone, rows out of
    time order and repeated timestamps are refused: storing them would lose or invent data.
    `extra` numeric columns (e.g. `adj_close`) are kept and checked like the values.
    """
    missing = [column for column in (*BAR_COLUMNS, *extra) if column not in frame.columns]
    if missing:
        raise BarsError(f"{origin}: missing column(s) {', '.join(missing)}")
    bars = frame.loc[:, [*BAR_COLUMNS, *extra]].copy()
    for column in (*VALUE_COLUMNS, *extra):
        if not pd.api.types.is_numeric_dtype(bars[column]):
            converted = pd.to_numeric(bars[column], errors="coerce")
            bad = converted.isna() & bars[column].notna()
            if bad.any():
                sample = bars.loc[bad, column].iloc[0]
                raise BarsError(
                    f"{origin}: column {column} holds {int(bad.sum())} value(s) that are not "
                    f"numbers, e.g. {sample!r}"
                )
        # Text becomes the double it names exactly (pandas' to_numeric may miss it by an ulp).
        bars[column] = bars[column].astype("float64")
    if not isinstance(bars["ts"].dtype, pd.DatetimeTZDtype):
        raise BarsError(f"{origin}: timestamps must carry a time zone")
    bars["ts"] = bars["ts"].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    bars["trade_date"] = pd.to_datetime(bars["trade_date"]).astype("datetime64[ns]")
    if bars["ts"].isna().any():
        raise BarsError(f"{origin}: {int(bars['ts'].isna().sum())} row(s) have no timestamp")
    keys = ["ticker", "interval", "ts"]
    duplicated = bars.duplicated(subset=keys, keep=False)
    if duplicated.any():
        first = bars.loc[duplicated, "ts"].iloc[0]
        raise BarsError(
            f"{origin}: {int(duplicated.sum())} rows share a timestamp (first: {first.isoformat()})"
        )
    intervals_per_day = bars.groupby(["ticker", "trade_date"])["interval"].nunique()
    if (intervals_per_day > 1).any():
        ticker, day = intervals_per_day[intervals_per_day > 1].index[0]
        raise BarsError(
            f"{origin}: {ticker} on {day.date()} mixes bar intervals; one interval per ticker-day"
        )
    ordered = bars.groupby(["ticker", "interval"], sort=False)["ts"].diff().dropna()
    if (ordered < pd.Timedelta(0)).any():
        raise BarsError(f"{origin}: rows are not in time order")
    return bars.reset_index(drop=True)


def storable_rows(
    frame: pd.DataFrame, wanted: Collection[date], live: pd.Series
) -> tuple[pd.Series, dict[str, int]]:
    """Which rows of a provider's answer may be stored, and the others counted by reason.

    `frame` has `trade_date` (naive, the session date), `ts` and the price columns; `live` marks
    the rows still forming (a session in progress, a bar not ended yet), as the provider judges
    them. Rows of days not asked for, still forming, repeating an earlier timestamp, or without
    any price are not stored.
    """
    asked = frame["trade_date"].isin(pd.to_datetime(list(wanted)))
    reasons = np.select(
        [
            ~asked,
            live,
            frame.duplicated(subset=["ts"], keep="first"),
            frame[list(PRICE_COLUMNS)].isna().all(axis=1),
        ],
        list(DROP_REASONS),
        default="",
    )
    dropped = {str(reason): int(n) for reason, n in Counter(reasons).items() if reason}
    return pd.Series(reasons == "", index=frame.index), dropped


def stamp_fetches(
    frames: Sequence[pd.DataFrame],
    fetched_at: Sequence[datetime],
    source: str | Sequence[str],
) -> pd.DataFrame:
    """The frames of several fetches as one, each row with its fetch's source (one for all, or
    one per fetch) and time: one concatenation and two column writes, however many fetches a
    run made."""
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    times = pd.DatetimeIndex([pd.Timestamp(moment).tz_convert("UTC") for moment in fetched_at])
    lengths = [len(frame) for frame in frames]
    stamped_at = pd.Series(
        times.repeat(lengths), index=combined.index, dtype=BAR_DTYPES["fetched_at"]
    )
    sources = (
        source if isinstance(source, str) else np.repeat(np.array(source, dtype=object), lengths)
    )
    return combined.assign(source=sources, fetched_at=stamped_at)


def raw_quotes(
    frames: Sequence[pd.DataFrame],
    fetched_at: Sequence[datetime],
    source: str | Sequence[str],
) -> pd.DataFrame:
    """The rows `raw_quotes` stores for the bars of several fetches, in the table's column
    order, with `adj_close` empty where the provider has none (only Yahoo adjusts)."""
    if not frames:
        return empty_bars(STORED_RAW_COLUMNS)
    stamped = stamp_fetches(frames, fetched_at, source)
    if ADJ_CLOSE not in stamped:
        stamped[ADJ_CLOSE] = np.nan
    return stamped[list(STORED_RAW_COLUMNS)]
