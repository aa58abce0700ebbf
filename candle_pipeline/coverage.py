"""Per-ticker views of the day partitions: which open sessions of each watched ticker are
complete, blocked, without data, failed, waiting for a retry, or not fetched yet.

Expected sessions come from the watch list (history start to removal) and the exchange
calendars with the calendar corrections in force, so days never materialised count as
`not_fetched`; the states come from `market.ticker_days`. The corrections of the range are listed
under the report, a day closed by one with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa
from tabulate import tabulate

from candle_pipeline.domain import sessions
from candle_pipeline.domain.calendar_overrides import CLOSED, CalendarOverride, overrides_frame
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
from candle_pipeline.warehouse import calendar_overrides, watchlist
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
CORRECTED_CLOSED_MARK = "C"
LEGEND = (
    "# complete, ~ in progress (provisional), B blocked by quality, n no data, F failed, "
    "R retry later, . not fetched, C closed by a calendar correction, - no session or not watched"
)


@dataclass(frozen=True)
class Coverage:
    """The open sessions of the watched tickers (`sessions`: trade_date, ticker, exchange,
    status) and the calendar corrections in force on their exchanges in the range."""

    sessions: pd.DataFrame
    corrections: list[CalendarOverride]


def expected_sessions(
    engine: sa.Engine, tickers: Sequence[str] | None, start: date, end: date
) -> Coverage:
    """(trade_date, ticker, exchange, status, last_error) of every open session a watched ticker
    counts on between `start` and `end`; `not_fetched` where no state is stored."""
    with engine.connect() as connection:
        watch = watchlist.watch_frame(watchlist.entries(connection))
        states = pd.DataFrame(
            connection.execute(
                sa.select(
                    ticker_days.c.trade_date,
                    ticker_days.c.ticker,
                    ticker_days.c.status,
                    ticker_days.c.last_error,
                )
                .where(ticker_days.c.trade_date.between(start, end))
                .where(ticker_days.c.ticker.in_(tickers) if tickers else sa.true())
            ).all(),
            columns=["trade_date", "ticker", "status", "last_error"],
        ).astype({"trade_date": "datetime64[ns]"})
    unknown = sorted(set(tickers or ()) - set(watch["ticker"]))
    if unknown:
        raise LookupError(f"ticker(s) {', '.join(unknown)} are not on the watch list")
    expected = expected_ticker_days(watch, days_between(start, end), tickers)
    mics = set(expected["exchange"])
    with engine.connect() as connection:
        corrections = [
            stored.override for stored in calendar_overrides.in_force(connection, mics, start, end)
        ]
    timings = sessions.market_timings(mics, start, end, overrides_frame(corrections))
    opened = timings.loc[timings["is_open"], ["mic", "session_date"]].rename(
        columns={"mic": "exchange", "session_date": "trade_date"}
    )
    open_days = expected.merge(opened, on=["exchange", "trade_date"])
    merged = open_days.merge(states, on=["trade_date", "ticker"], how="left")
    return Coverage(merged.assign(status=merged["status"].fillna(NOT_FETCHED)), corrections)


def report(engine: sa.Engine, tickers: Sequence[str] | None, start: date, end: date) -> str:
    """A table of ticker-days per ticker and status; for one ticker, a line per month."""
    coverage = expected_sessions(engine, tickers, start, end)
    frame = coverage.sessions
    notes = _corrections(coverage.corrections)
    if tickers is not None and len(tickers) == 1:
        return _calendar(coverage, tickers[0], start, end) + notes
    if frame.empty:
        return f"no watched ticker has a session between {start} and {end}" + notes
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
    table = tabulate(counts, headers="keys", tablefmt="github", intfmt=",")
    return f"{title}\n{table}{notes}"


def _corrections(corrections: Sequence[CalendarOverride]) -> str:
    """A line per calendar correction in force, with its reason and source."""
    lines = [
        f"{override.describe()}: {override.reason or 'no reason given'}"
        + (f" ({override.source})" if override.source else "")
        for override in corrections
    ]
    return "".join(f"\n{line}" for line in ["calendar corrections:", *lines] if lines)


def _calendar(coverage: Coverage, ticker: str, start: date, end: date) -> str:
    frame = coverage.sessions
    exchanges = set(frame["exchange"])
    marks = {
        override.session_date: CORRECTED_CLOSED_MARK
        for override in coverage.corrections
        if override.kind == CLOSED and override.mic in exchanges
    }
    marks.update(zip(frame["trade_date"].dt.date, frame["status"].map(MARKS), strict=True))
    months: dict[str, list[str]] = {}
    for day in days_between(start, end):
        months.setdefault(f"{day:%Y-%m}", []).append(marks.get(day, NO_SESSION_MARK))
    counts = frame["status"].value_counts()
    summary = ", ".join(f"{counts[status]} {status}" for status in COLUMNS if status in counts)
    lines = [f"{ticker}, {start} .. {end}: {len(frame)} session(s): {summary or 'none'}", LEGEND]
    lines.extend(f"{month}  {''.join(days)}" for month, days in months.items())
    causes = frame.loc[frame["status"] != COMPLETE, "last_error"].dropna().value_counts()
    lines.extend(f"{count} x {cause}" for cause, count in causes.items())
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
