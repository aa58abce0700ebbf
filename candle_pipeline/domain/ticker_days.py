"""Per ticker and day: which ticker-days a day partition holds, which of them a run must fetch,
and the state each one is left in (the rows of `market.ticker_days`, the persistent work queue).

A day holds every ticker the watch list counted that day: from its history start, until the day
it was removed. A ticker-day's status is the outcome of its latest attempt:

- `complete`: raw, validated and candles stored; the quality gate passed.
- `blocked`: raw and validated stored, but the quality score is below the threshold: no candles
  (the candles of an earlier good version are kept).
- `no_data`: its exchange had a session, the provider returned no bar.
- `failed`: the provider refused (unknown symbol, unreadable answer, garbage); asked again the
  next time the day is materialised, and by the retry sensor after a wait that doubles with each
  attempt, a few times (`FailedRetries`), since providers refuse by mistake too.
- `retry_later`: the provider asked us to wait (HTTP 429 with Retry-After, its circuit breaker
  open): not asked again before `retry_after`, then the retry sensor asks.
- `closed`: its exchange had no session that day: nothing is expected, no provider call.
- `in_progress`: provisional: the bars of a session still open, stored up to `last_bar_at` by an
  intraday refresh and scored against the part of the session that has elapsed. The next refresh
  asks only for the bars after it; the first run after the close replaces it with the final day.

A complete or closed ticker-day is settled: a run asks no provider for it again unless told to
(`refetch`), or unless it was judged on another exchange's calendar than the ticker's current one.
What the data columns (rows, quality score, source, fetch time) describe is what is stored: an
attempt that fails or returns nothing never deletes stored rows, so they carry over.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from candle_pipeline.domain.sessions import MissingTimingsError, not_closed

COMPLETE = "complete"
BLOCKED = "blocked"
NO_DATA = "no_data"
FAILED = "failed"
RETRY_LATER = "retry_later"
CLOSED = "closed"
IN_PROGRESS = "in_progress"
STATUSES = (COMPLETE, BLOCKED, NO_DATA, FAILED, RETRY_LATER, CLOSED, IN_PROGRESS)
# Not a stored status: an open session of a watched ticker no run has looked at yet.
NOT_FETCHED = "not_fetched"
# Open ticker-days whose data is missing: what the coverage check names.
MISSING = (NO_DATA, FAILED, RETRY_LATER, NOT_FETCHED)

# What a run does with each expected ticker-day.
FETCH = "fetch"  # ask the provider (or, without a fetch, process the stored rows)
MARK_CLOSED = "closed"  # no session: record it, no call
SETTLED = "settled"  # complete or closed already: nothing to do
WAITING = "waiting"  # retry_later and its retry_after is still ahead

KEY = ["trade_date", "ticker"]
WATCH_COLUMNS = ("ticker", "exchange", "history_start", "removed_on")
STATE_COLUMNS = (
    "ticker",
    "trade_date",
    "exchange",
    "status",
    "attempts",
    "last_error",
    "retry_after",
    "quality_score",
    "rows",
    "spike_rows",
    "stale_rows",
    "gaps",
    "source",
    "fetched_at",
    "updated_at",
    "run_id",
    "fallback_reason",
    "last_bar_at",
)
STATE_DTYPES = {
    "ticker": object,
    "trade_date": "datetime64[ns]",
    "exchange": object,
    "status": object,
    "attempts": "int64",
    "last_error": object,
    "retry_after": "datetime64[ns, UTC]",
    "quality_score": "float64",
    "rows": "int64",
    "spike_rows": "int64",
    "stale_rows": "int64",
    "gaps": "int64",
    "source": object,
    "fetched_at": "datetime64[ns, UTC]",
    "updated_at": "datetime64[ns, UTC]",
    "run_id": object,
    "fallback_reason": object,
    "last_bar_at": "datetime64[ns, UTC]",
}
# Columns that describe the stored data and carry over an attempt that stored nothing.
DATA_COLUMNS = (
    "quality_score",
    "rows",
    "spike_rows",
    "stale_rows",
    "gaps",
    "source",
    "fetched_at",
    "fallback_reason",
    "last_bar_at",
)
# Counts of the stored data: zero where nothing is stored.
COUNT_COLUMNS = ("rows", "spike_rows", "stale_rows", "gaps")


def empty_states() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=STATE_DTYPES[column]) for column in STATE_COLUMNS})


def expected_ticker_days(
    watch: pd.DataFrame, days: Sequence[date], tickers: Collection[str] | None = None
) -> pd.DataFrame:
    """(trade_date, ticker, exchange) of every ticker the watch list counts on each of `days`.

    `watch` holds WATCH_COLUMNS; a ticker counts from `history_start` (inclusive) until
    `removed_on` (exclusive, NULL while still watched). `tickers` narrows it to some of them.
    """
    if tickers is not None:
        watch = watch[watch["ticker"].isin(list(tickers))]
    day_values = pd.to_datetime(pd.Series(list(days), dtype="object")).to_numpy("datetime64[ns]")
    starts = pd.to_datetime(watch["history_start"]).to_numpy("datetime64[ns]")
    ends = pd.to_datetime(watch["removed_on"]).to_numpy("datetime64[ns]")
    on_day = day_values[:, None]
    counted = (on_day >= starts[None, :]) & (np.isnat(ends)[None, :] | (on_day < ends[None, :]))
    day_index, ticker_index = np.nonzero(counted)
    return pd.DataFrame(
        {
            "trade_date": day_values[day_index],
            "ticker": watch["ticker"].to_numpy(dtype=object)[ticker_index],
            "exchange": watch["exchange"].to_numpy(dtype=object)[ticker_index],
        }
    )


@dataclass(frozen=True)
class WorkPlan:
    """Every expected ticker-day with its exchange's session (`is_open`, and `in_session` while
    that session has not closed yet), its previous state (`previous_*` columns, NaN when it has
    none) and what this run does with it (`action`)."""

    ticker_days: pd.DataFrame

    def keys(self, action: str) -> list[tuple[date, str]]:
        rows = self.ticker_days[self.ticker_days["action"] == action]
        return list(zip(rows["trade_date"].dt.date, rows["ticker"], strict=True))

    def to_fetch(self) -> dict[str, list[date]]:
        """Per ticker, the days to ask the provider for, in order."""
        rows = self.ticker_days[self.ticker_days["action"] == FETCH]
        return {
            ticker: sorted(group.dt.date)
            for ticker, group in rows.groupby("ticker", sort=False)["trade_date"]
        }

    def count(self, action: str) -> int:
        return int((self.ticker_days["action"] == action).sum())

    def in_session(self) -> pd.DataFrame:
        """(trade_date, ticker) of the ticker-days whose session has not closed yet."""
        return self.ticker_days.loc[self.ticker_days["in_session"], KEY]

    def resumed(self) -> list[tuple[date, str]]:
        """(day, ticker) of the provisional ticker-days this run resumes."""
        rows = self.ticker_days[self.ticker_days["resume"]]
        return list(zip(rows["trade_date"].dt.date, rows["ticker"], strict=True))

    def resume_after(self) -> dict[str, datetime]:
        """Per ticker whose provisional day is still in session, the start of its last stored
        bar: a refresh asks only for what follows it (unless the run refetches)."""
        rows = self.ticker_days[self.ticker_days["resume"]]
        return dict(zip(rows["ticker"], rows["previous_last_bar_at"], strict=True))


def plan_work(
    expected: pd.DataFrame,
    sessions: pd.DataFrame,
    states: pd.DataFrame,
    now: datetime,
    *,
    refetch: bool = False,
) -> WorkPlan:
    """What to do with each expected ticker-day (`expected_ticker_days`).

    `sessions` has (mic, session_date, is_open) for every exchange and day concerned (the market
    timings, with `close_utc`); `states` the stored rows of these ticker-days (STATE_COLUMNS).
    Closed days cost no call; complete ones none either, unless `refetch`; a retry_later one
    waits for its `retry_after` unless `refetch`. A provisional ticker-day whose session is still
    open resumes after its last stored bar.
    """
    opens = sessions.loc[:, ["mic", "session_date", "is_open", "close_utc"]].rename(
        columns={"mic": "exchange", "session_date": "trade_date"}
    )
    work = expected.merge(
        opens.astype({"trade_date": "datetime64[ns]"}), on=["exchange", "trade_date"], how="left"
    )
    if work["is_open"].isna().any():
        first = work[work["is_open"].isna()].iloc[0]
        raise MissingTimingsError(
            f"no market timings for {first['exchange']} on {first['trade_date'].date()}: "
            "materialise market_timings for that day first"
        )
    previous = states.loc[:, list(STATE_COLUMNS)].add_prefix("previous_")
    work = work.merge(
        previous.astype({"previous_trade_date": "datetime64[ns]"}),
        left_on=KEY,
        right_on=["previous_trade_date", "previous_ticker"],
        how="left",
    ).drop(columns=["previous_trade_date", "previous_ticker"])
    is_open = work["is_open"].astype(bool)
    same_exchange = work["previous_exchange"] == work["exchange"]
    status = work["previous_status"]
    settled = same_exchange & ((is_open & (status == COMPLETE)) | (~is_open & (status == CLOSED)))
    waiting = (status == RETRY_LATER) & (work["previous_retry_after"] > pd.Timestamp(now))
    if refetch:
        settled = settled & ~is_open
        waiting = waiting & False
    work["is_open"] = is_open
    work["in_session"] = not_closed(work, now)
    work["action"] = np.select(
        [settled, ~is_open, waiting], [SETTLED, MARK_CLOSED, WAITING], default=FETCH
    )
    work["resume"] = (
        ~pd.Series(refetch, index=work.index)
        & same_exchange
        & work["in_session"]
        & (status == IN_PROGRESS)
        & work["previous_last_bar_at"].notna()
        & (work["action"] == FETCH)
    )
    return WorkPlan(work.drop(columns=["close_utc"]))


@dataclass(frozen=True)
class FailedRetries:
    """When a `failed` ticker-day is asked again by itself: `first_wait` after the first failed
    attempt, twice as long after each further one, until `attempts` attempts were made."""

    first_wait: timedelta
    attempts: int

    def retry_after(self, now: datetime, attempts: pd.Series) -> pd.Series:
        """The moment to ask again after `attempts` attempts (NaT: no more retries)."""
        waits = self.first_wait * 2 ** (attempts.clip(lower=1) - 1).astype("int64")
        return (pd.Timestamp(now) + waits).where(attempts < self.attempts)


@dataclass(frozen=True)
class Failure:
    """Why a ticker's fetch stored nothing: `failed` or `retry_later` (then not before
    `retry_after`)."""

    status: str
    error: str
    retry_after: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What a run found for the ticker-days it processed, and when a failed one is asked again.

    `stored`: one row per ticker-day (trade_date, ticker) whose rows were stored, with `rows`,
    `source`, `fetched_at`, the start of its latest bar (`last_bar_at`), its `quality_score`
    (NaN without one), the rows flagged as spikes
    and stale and the gaps found (`spike_rows`, `stale_rows`, `gaps`), whether it `passed` the
    gate and the gate's `verdict`; `failures` by ticker; `attempted`: True when the provider
    was asked (attempts count up), False when stored rows were processed again; `fallbacks`:
    why each ticker's own source did not serve it, for the tickers a fallback source served.
    """

    stored: pd.DataFrame
    failures: Mapping[str, Failure]
    attempted: bool
    source: str
    failed_retries: FailedRetries
    fallbacks: Mapping[str, str] = field(default_factory=dict)


def no_data_from(source: str) -> str:
    """The cause of a ticker-day the provider answered without bars, everywhere it is shown."""
    return f"no data from {source}"


def settle(plan: WorkPlan, outcome: Outcome, run_id: str, now: datetime) -> pd.DataFrame:
    """The new state (STATE_COLUMNS) of every ticker-day the run processed or found closed."""
    work = plan.ticker_days[plan.ticker_days["action"].isin([FETCH, MARK_CLOSED])]
    work = work.merge(
        outcome.stored.add_prefix("new_"),
        how="left",
        left_on=KEY,
        right_on=["new_trade_date", "new_ticker"],
    ).merge(_failure_frame(outcome.failures), how="left", on="ticker")
    reasons = work["ticker"].map(outcome.fallbacks).astype(object)
    work["new_fallback_reason"] = reasons.where(reasons.notna(), None)
    closed = work["action"] == MARK_CLOSED
    stored = work["new_rows"].notna()
    if not outcome.attempted:
        # Stored rows processed again: a ticker-day without any is left as it was.
        kept = closed | stored
        work, closed, stored = work[kept], closed[kept], stored[kept]
    failed = ~closed & ~stored & work["failure_status"].notna()
    empty = ~closed & ~stored & ~failed
    passed = work["new_passed"].eq(True)

    status = pd.Series(NO_DATA, index=work.index, dtype=object)
    status[closed] = CLOSED
    status[stored & passed] = np.where(
        work.loc[stored & passed, "in_session"], IN_PROGRESS, COMPLETE
    )
    status[stored & ~passed] = BLOCKED
    status[failed] = work.loc[failed, "failure_status"]
    last_error = pd.Series(None, index=work.index, dtype=object)
    last_error[stored & ~passed] = work.loc[stored & ~passed, "new_verdict"]
    last_error[failed] = work.loc[failed, "failure_error"]
    last_error[empty] = no_data_from(outcome.source)
    attempts = work["previous_attempts"].fillna(0).astype("int64")
    if outcome.attempted:
        attempts = attempts + (~closed).astype("int64")

    states = pd.DataFrame(
        {
            "ticker": work["ticker"],
            "trade_date": work["trade_date"],
            "exchange": work["exchange"],
            "status": status,
            "attempts": attempts,
            "last_error": last_error,
            "retry_after": work["failure_retry_after"].where(failed),
        }
    )
    gave_up = failed & (status == FAILED)
    states.loc[gave_up, "retry_after"] = outcome.failed_retries.retry_after(now, attempts[gave_up])
    for column in DATA_COLUMNS:
        states[column] = work[f"new_{column}"].where(stored, work[f"previous_{column}"])
    states.loc[closed, "quality_score"] = np.nan
    states.loc[closed, list(COUNT_COLUMNS)] = 0
    states[list(COUNT_COLUMNS)] = states[list(COUNT_COLUMNS)].fillna(0)
    states["updated_at"] = pd.Timestamp(now).tz_convert("UTC")
    states["run_id"] = run_id
    return conform_states(states)


def _failure_frame(failures: Mapping[str, Failure]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": list(failures),
            "failure_status": [failure.status for failure in failures.values()],
            "failure_error": [failure.error for failure in failures.values()],
            "failure_retry_after": pd.to_datetime(
                [failure.retry_after for failure in failures.values()], utc=True
            ),
        }
    ).astype({"ticker": object, "failure_status": object, "failure_error": object})


def conform_states(states: pd.DataFrame) -> pd.DataFrame:
    """STATE_COLUMNS in order, with the table's types."""
    frame = states.loc[:, list(STATE_COLUMNS)].copy()
    for column in ("retry_after", "fetched_at", "last_bar_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype(STATE_DTYPES).reset_index(drop=True)


def final_states(plan: WorkPlan, new_states: pd.DataFrame) -> pd.DataFrame:
    """Every expected ticker-day's state after the run: the new rows, else the previous ones,
    else (a ticker-day no run has looked at) `closed` on a closed day and `not_fetched` on an
    open one."""
    work = plan.ticker_days
    previous = work.loc[:, ["trade_date", "ticker", *(f"previous_{c}" for c in STATE_COLUMNS[2:])]]
    previous = previous.rename(columns=lambda name: name.removeprefix("previous_"))
    unseen = previous["status"].isna()
    previous["exchange"] = previous["exchange"].fillna(work["exchange"])
    previous.loc[unseen, "status"] = np.where(work.loc[unseen, "is_open"], NOT_FETCHED, CLOSED)
    previous.loc[unseen, list(COUNT_COLUMNS)] = 0
    previous.loc[unseen, "attempts"] = 0
    combined = pd.concat([new_states, conform_states(previous)], ignore_index=True)
    return combined.drop_duplicates(KEY, keep="first").reset_index(drop=True)


def day_summary(final: pd.DataFrame) -> pd.DataFrame:
    """Per day (index `trade_date`): ticker-days expected, how many are in each status, how many
    hold data a fallback source served, the lowest and mean quality score of the scored ones
    (NaN when none is scored) and the latest bar stored of its provisional ones
    (`in_progress_last_bar`, NaT when none is)."""
    counts = (
        final.groupby(["trade_date", "status"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=[*STATUSES, NOT_FETCHED], fill_value=0)
    )
    scored = final[final["status"].isin([COMPLETE, BLOCKED, IN_PROGRESS])]
    scores = scored.groupby("trade_date")["quality_score"].agg(["min", "mean"])
    fallback = final["fallback_reason"].notna().groupby(final["trade_date"]).sum()
    provisional = final[final["status"] == IN_PROGRESS].groupby("trade_date")["last_bar_at"].max()
    summary = (
        counts.assign(expected=counts.sum(axis=1), fallback=fallback)
        .join(scores.rename(columns={"min": "quality_score_min", "mean": "quality_score_mean"}))
        .join(provisional.rename("in_progress_last_bar"))
    )
    return summary.astype(
        {status: "int64" for status in (*STATUSES, NOT_FETCHED, "expected", "fallback")}
    )
