"""Weekly and monthly candles (`1w`, `1M`) from the daily candles of complete sessions.

A period is a calendar week (Monday to Sunday) or a calendar month. A ticker gets a candle for a
period only when every session its exchange held in it is a `complete` ticker-day with a daily
candle: a holiday is no session, so a week with one is built from its four sessions. A period
with any other session (blocked, failed, no data, not materialised) gets no candle; its row says
which days stand in the way and why. A period is judged only once its last session has closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd

WEEKLY = "1w"
MONTHLY = "1M"
# pandas' period frequencies: weeks ending on Sunday (so starting on Monday), calendar months.
PERIOD_FREQUENCIES = {WEEKLY: "W-SUN", MONTHLY: "M"}
PERIOD_INTERVALS = tuple(PERIOD_FREQUENCIES)

PERIOD_COMPLETE = "complete"
PERIOD_INCOMPLETE = "incomplete"
COMPLETE_DAY = "complete"
NOT_MATERIALISED = "not materialised"
# A period's reason when its only problem is days no run has materialised yet (a backfill in
# progress), as `_reason` words it.
ONLY_NOT_MATERIALISED = (
    rf"(\d{{4}}-\d\d-\d\d {NOT_MATERIALISED}"
    rf"|\d+ days {NOT_MATERIALISED} \(\S+ \.\. \S+\))"
)
NO_DAILY_CANDLE = "no daily candle"
DAILY = "1d"

PERIOD_KEY = ["ticker", "interval", "period_start"]
PERIOD_COLUMNS = (
    "ticker",
    "interval",
    "period_start",
    "period_end",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "sessions",
    "status",
    "reason",
)
# Sessions of each ticker's exchange: one row per ticker and session day, with its close in UTC.
SESSION_COLUMNS = ("ticker", "trade_date", "close_utc")


def periods_touching(
    days: Sequence[date], intervals: Sequence[str] = PERIOD_INTERVALS
) -> pd.DataFrame:
    """The periods (interval, period_start, period_end) that hold any of `days`."""
    stamps = pd.Series(pd.to_datetime(list(days)), dtype="datetime64[ns]")
    frames = []
    for interval in intervals:
        periods = stamps.dt.to_period(PERIOD_FREQUENCIES[interval]).drop_duplicates()
        frames.append(
            pd.DataFrame(
                {
                    "interval": interval,
                    "period_start": periods.dt.start_time.dt.normalize().to_numpy(),
                    "period_end": periods.dt.end_time.dt.normalize().to_numpy(),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["interval", "period_start", "period_end"])
    return pd.concat(frames, ignore_index=True)


def period_days(periods: pd.DataFrame) -> list[date]:
    """Every calendar day of `periods`."""
    days: set[date] = set()
    for start, end in zip(periods["period_start"], periods["period_end"], strict=True):
        days.update(day.date() for day in pd.date_range(start, end, freq="D"))
    return sorted(days)


def period_candles(
    periods: pd.DataFrame,
    sessions: pd.DataFrame,
    states: pd.DataFrame,
    daily: pd.DataFrame,
    now: datetime,
) -> pd.DataFrame:
    """One row (PERIOD_COLUMNS) per ticker of `sessions` and period of `periods` whose last
    session closed by `now`: its candle when all its sessions are complete (`states`, the
    ticker-days' statuses) and have a daily candle (`daily`, 1d candles), else no prices and the
    days that stand in the way."""
    expected = _sessions_by_period(periods, sessions)
    last_close = expected.groupby(PERIOD_KEY)["close_utc"].transform("max")
    expected = expected[last_close <= pd.Timestamp(now)]
    if expected.empty:
        return empty_period_candles()
    status = states.loc[:, ["ticker", "trade_date", "status"]].assign(
        trade_date=lambda frame: pd.to_datetime(frame["trade_date"]).astype("datetime64[ns]")
    )
    candles = daily.loc[
        daily["interval"] == DAILY,
        ["ticker", "trade_date", "ts", "open", "high", "low", "close", "volume"],
    ].assign(trade_date=lambda frame: pd.to_datetime(frame["trade_date"]).astype("datetime64[ns]"))
    joined = expected.merge(status, on=["ticker", "trade_date"], how="left").merge(
        candles, on=["ticker", "trade_date"], how="left"
    )
    problem = (
        joined["status"]
        .fillna(NOT_MATERIALISED)
        .where(
            joined["status"] != COMPLETE_DAY,
            pd.Series(NO_DAILY_CANDLE, index=joined.index).where(joined["open"].isna()),
        )
    )
    joined = joined.assign(problem=problem).sort_values([*PERIOD_KEY, "trade_date"])
    grouped = joined.groupby(PERIOD_KEY, sort=True)
    result = grouped.agg(
        period_end=("period_end", "first"),
        ts=("ts", "first"),
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        sessions=("trade_date", "size"),
    ).reset_index()
    reasons = pd.DataFrame(
        [
            {**dict(zip(PERIOD_KEY, key, strict=True)), "reason": _reason(days)}
            for key, days in joined.dropna(subset=["problem"]).groupby(PERIOD_KEY, sort=True)
        ],
        columns=[*PERIOD_KEY, "reason"],
    )
    result = result.merge(reasons.astype(result.dtypes[PERIOD_KEY]), on=PERIOD_KEY, how="left")
    result["reason"] = result["reason"].fillna("")
    incomplete = result["reason"] != ""
    prices = ["ts", "open", "high", "low", "close", "volume"]
    result.loc[incomplete, prices] = None
    result["reason"] = result["reason"].where(incomplete, None)
    result["status"] = PERIOD_INCOMPLETE
    result.loc[~incomplete, "status"] = PERIOD_COMPLETE
    result["ts"] = pd.to_datetime(result["ts"], utc=True)
    return result.loc[:, list(PERIOD_COLUMNS)]


def _reason(days: pd.DataFrame) -> str:
    """Why a period has no candle, per kind of problem in the order first met: its day
    (`2014-07-09 blocked`), or how many days and their span (`19 days not materialised
    (2005-04-05 .. 2005-04-29)`)."""
    parts = []
    for problem, group in days.groupby("problem", sort=False):
        first, last = group["trade_date"].min(), group["trade_date"].max()
        if len(group) == 1:
            parts.append(f"{first:%Y-%m-%d} {problem}")
        else:
            parts.append(f"{len(group)} days {problem} ({first:%Y-%m-%d} .. {last:%Y-%m-%d})")
    return "; ".join(parts)


def empty_period_candles() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in PERIOD_COLUMNS})
    return frame.astype(
        {
            "period_start": "datetime64[ns]",
            "period_end": "datetime64[ns]",
            "ts": "datetime64[ns, UTC]",
            **dict.fromkeys(("open", "high", "low", "close", "volume"), "float64"),
            "sessions": "int64",
        }
    )


def _sessions_by_period(periods: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """The sessions of each ticker in each period (ticker, interval, period_start, period_end,
    trade_date, close_utc)."""
    days = sessions.loc[:, list(SESSION_COLUMNS)].assign(
        trade_date=lambda frame: pd.to_datetime(frame["trade_date"]).astype("datetime64[ns]")
    )
    frames = []
    for interval, bounds in periods.groupby("interval", sort=False):
        starts = days["trade_date"].dt.to_period(PERIOD_FREQUENCIES[interval]).dt.start_time
        frames.append(
            days.assign(interval=interval, period_start=starts.dt.normalize()).merge(
                bounds.assign(
                    period_start=pd.to_datetime(bounds["period_start"]).astype("datetime64[ns]")
                ),
                on=["interval", "period_start"],
            )
        )
    if not frames:
        return pd.DataFrame(columns=[*PERIOD_KEY, "period_end", "trade_date", "close_utc"])
    return pd.concat(frames, ignore_index=True)
