"""Per-ticker views of the day partitions: which open sessions of each watched ticker are
complete, blocked, without data, failed, waiting for a retry, or not fetched yet.

Expected sessions come from the watch list (history start to removal) and the exchange
calendars, so days never materialised count as `not_fetched`; the states come from
`market.ticker_days`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import sqlalchemy as sa
from tabulate import tabulate

from candle_pipeline.domain import sessions
from candle_pipeline.domain.ticker_days import (
    BLOCKED,
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    NO_DATA,
    NOT_FETCHED,
    RETRY_LATER,
    expected_ticker_days,
)
from candle_pipeline.partitions import days_between
from candle_pipeline.warehouse import watchlist
from candle_pipeline.warehouse.tables import ticker_days

COLUMNS = (COMPLETE, IN_PROGRESS, BLOCKED, NO_DATA, FAILED, RETRY_LATER, NOT_FETCHED)
# One character per calendar day in a ticker's month line.
MARKS = {
    COMPLETE: "#",
    IN_PROGRESS: "~",
    BLOCKED: "B",
    NO_DATA: "n",
    FAILED: "F",
    RETRY_LATER: "R",
    NOT_FETCHED: ".",
}
NO_SESSION_MARK = "-"
LEGEND = (
    "# complete, ~ in progress (provisional), B blocked by quality, n no data, F failed, "
    "R retry later, . not fetched, - no session or not watched"
)


def expected_sessions(
    engine: sa.Engine, tickers: Sequence[str] | None, start: date, end: date
) -> pd.DataFrame:
    """(trade_date, ticker, exchange, status) of every open session a watched ticker counts on
    between `start` and `end`; `not_fetched` where no state is stored."""
    with engine.connect() as connection:
        watch = watchlist.watch_frame(watchlist.entries(connection))
        states = pd.DataFrame(
            connection.execute(
                sa.select(ticker_days.c.trade_date, ticker_days.c.ticker, ticker_days.c.status)
                .where(ticker_days.c.trade_date.between(start, end))
                .where(ticker_days.c.ticker.in_(tickers) if tickers else sa.true())
            ).all(),
            columns=["trade_date", "ticker", "status"],
        ).astype({"trade_date": "datetime64[ns]"})
    unknown = sorted(set(tickers or ()) - set(watch["ticker"]))
    if unknown:
        raise LookupError(f"ticker(s) {', '.join(unknown)} are not on the watch list")
    expected = expected_ticker_days(watch, days_between(start, end), tickers)
    timings = sessions.market_timings(set(expected["exchange"]), start, end)
    opened = timings.loc[timings["is_open"], ["mic", "session_date"]].rename(
        columns={"mic": "exchange", "session_date": "trade_date"}
    )
    open_days = expected.merge(opened, on=["exchange", "trade_date"])
    merged = open_days.merge(states, on=["trade_date", "ticker"], how="left")
    return merged.assign(status=merged["status"].fillna(NOT_FETCHED))


def report(engine: sa.Engine, tickers: Sequence[str] | None, start: date, end: date) -> str:
    """A table of ticker-days per ticker and status; for one ticker, a line per month."""
    frame = expected_sessions(engine, tickers, start, end)
    if tickers is not None and len(tickers) == 1:
        return _calendar(frame, tickers[0], start, end)
    if frame.empty:
        return f"no watched ticker has a session between {start} and {end}"
    counts = (
        frame.groupby(["ticker", "status"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(COLUMNS), fill_value=0)
    )
    if not counts[IN_PROGRESS].any():
        # Provisional only while a session is open: no column of zeros the rest of the time.
        counts = counts.drop(columns=[IN_PROGRESS])
    counts.insert(0, "sessions", counts.sum(axis=1))
    title = f"open sessions of watched tickers, {start} .. {end}"
    return f"{title}\n" + tabulate(counts, headers="keys", tablefmt="github", intfmt=",")


def _calendar(frame: pd.DataFrame, ticker: str, start: date, end: date) -> str:
    marks = dict(zip(frame["trade_date"].dt.date, frame["status"].map(MARKS), strict=True))
    months: dict[str, list[str]] = {}
    for day in days_between(start, end):
        months.setdefault(f"{day:%Y-%m}", []).append(marks.get(day, NO_SESSION_MARK))
    counts = frame["status"].value_counts()
    summary = ", ".join(f"{counts[status]} {status}" for status in COLUMNS if status in counts)
    lines = [f"{ticker}, {start} .. {end}: {len(frame)} session(s): {summary or 'none'}", LEGEND]
    lines.extend(f"{month}  {''.join(days)}" for month, days in months.items())
    return "\n".join(lines)


def day_table(engine: sa.Engine, days: Sequence[date]) -> str:
    """Per day: its ticker-days by status and their lowest quality score (the demo's summary)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                ticker_days.c.trade_date, ticker_days.c.status, ticker_days.c.quality_score
            ).where(ticker_days.c.trade_date.in_(list(days)))
        ).all()
    states = pd.DataFrame(rows, columns=["day", "status", "quality_score"])
    table = (
        states.pivot_table(index="day", columns="status", values="quality_score", aggfunc="size")
        .fillna(0)
        .astype("int64")
        .reindex(index=sorted(set(days)), fill_value=0)
    )
    lowest = states.groupby("day")["quality_score"].min()
    table["lowest score"] = lowest.reindex(table.index).map(
        lambda score: "" if pd.isna(score) else f"{score:.3f}"
    )
    return tabulate(table, headers="keys", tablefmt="github", disable_numparse=True)
