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
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.watchlist import watch_frame

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
    warehouse: WarehouseResource, tickers: Sequence[str] | None, start: date, end: date
) -> Coverage:
    """(trade_date, ticker, exchange, status, last_error) of every open session a watched ticker
    counts on between `start` and `end`; `not_fetched` where no state is stored."""
    watch = watch_frame(warehouse.watchlist())
    states = warehouse.ticker_day_statuses(tickers, start, end)
    unknown = sorted(set(tickers or ()) - set(watch["ticker"]))
    if unknown:
        raise LookupError(f"ticker(s) {', '.join(unknown)} are not on the watch list")
    expected = expected_ticker_days(watch, days_between(start, end), tickers)
    mics = set(expected["exchange"])
    corrections = [stored.override for stored in warehouse.calendar_overrides(mics, start, end)]
    timings = sessions.market_timings(mics, start, end, overrides_frame(corrections))
    opened = timings.loc[timings["is_open"], ["mic", "session_date"]].rename(
        columns={"mic": "exchange", "session_date": "trade_date"}
    )
    open_days = expected.merge(opened, on=["exchange", "trade_date"])
    merged = open_days.merge(states, on=["trade_date", "ticker"], how="left")
    return Coverage(merged.assign(status=merged["status"].fillna(NOT_FETCHED)), corrections)


def report(
    warehouse: WarehouseResource, tickers: Sequence[str] | None, start: date, end: date
) -> str:
    """A table of ticker-days per ticker and status; for one ticker, a line per month."""
    coverage = expected_sessions(warehouse, tickers, start, end)
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


def day_table(warehouse: WarehouseResource, days: Sequence[date]) -> str:
    """Per day: its ticker-days by status and their lowest quality score (the demo's summary)."""
    stored = warehouse.ticker_day_states(sorted(set(days)))
    states = pd.DataFrame(
        {
            "day": stored["trade_date"].dt.date,
            "status": stored["status"],
            "quality_score": stored["quality_score"],
        }
    )
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
