"""Launching materialisations of partition ranges as Dagster runs recorded in the instance.

One run covers a whole date range: one for `market_timings`, and one for the per-ticker assets
per block of tickers that are contiguous in the `tickers` partition order (usually a single block).
Runs execute in this process (no multiprocess start-up cost) against the real instance, so the
Dagster UI shows them like any other run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from candle_pipeline.partitions import (
    TICKERS_PARTITION_NAME,
    TickerDay,
    timing_date_partitions,
    trading_date_partitions,
)
from candle_pipeline.settings import get_settings

TIMINGS_ASSET = "market_timings"
PER_TICKER_ASSETS = ("raw_quotes", "validated_quotes", "candles")
ALL_ASSETS = (TIMINGS_ASSET, *PER_TICKER_ASSETS)


class RunRequestError(ValueError):
    """Arguments that cannot become a run: unknown asset or ticker, dates outside the partitions."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    assets: tuple[str, ...]
    first_key: str
    last_key: str
    success: bool
    error: str | None


def validate_selection(select: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in select if name not in ALL_ASSETS]
    if unknown:
        raise RunRequestError(
            f"unknown asset(s) {', '.join(unknown)}; choose from {', '.join(ALL_ASSETS)}"
        )
    if not select:
        raise RunRequestError("select at least one asset")
    return tuple(name for name in ALL_ASSETS if name in select)


def validate_dates(start: date, end: date, select: Sequence[str] = ALL_ASSETS) -> None:
    """Refuse reversed ranges and days outside the selected assets' partitions."""
    if end < start:
        raise RunRequestError(f"the range is reversed: start {start} is after end {end}")
    if any(name in PER_TICKER_ASSETS for name in select):
        partitions, what = trading_date_partitions, "the last partition (today)"
        setting = "CANDLE_PARTITION_START"
    else:
        partitions, what = timing_date_partitions, "the last market_timings partition"
        setting = "CANDLE_TIMINGS_START"
    first = date.fromisoformat(partitions.get_first_partition_key())
    last = date.fromisoformat(partitions.get_last_partition_key())
    if start < first:
        raise RunRequestError(f"start {start} is before the first partition {first} ({setting})")
    if end > last:
        raise RunRequestError(f"end {end} is after {what} {last}")


def ticker_blocks(registered: Sequence[str], wanted: Sequence[str]) -> list[list[str]]:
    """`wanted` split into runs of tickers that are adjacent in `registered` order."""
    position = {ticker: index for index, ticker in enumerate(registered)}
    unknown = [ticker for ticker in wanted if ticker not in position]
    if unknown:
        raise RunRequestError(
            f"ticker(s) {', '.join(unknown)} are not registered; add them with "
            "`candle-pipeline tickers add`"
        )
    ordered = sorted(set(wanted), key=position.__getitem__)
    blocks: list[list[str]] = []
    for ticker in ordered:
        if blocks and position[blocks[-1][-1]] + 1 == position[ticker]:
            blocks[-1].append(ticker)
        else:
            blocks.append([ticker])
    return blocks


def materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tickers: Sequence[str],
    start: date,
    end: date,
    *,
    select: Sequence[str] = ALL_ASSETS,
) -> list[RunOutcome]:
    """Materialise `select` for `tickers` x [start, end]; stops at the first failed run."""
    assets = validate_selection(select)
    validate_dates(start, end, assets)
    per_ticker = tuple(name for name in assets if name in PER_TICKER_ASSETS)
    blocks = []
    if per_ticker:
        if not tickers:
            raise RunRequestError("name at least one ticker (--tickers)")
        registered = instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
        blocks = ticker_blocks(registered, tickers)
    outcomes = []
    if TIMINGS_ASSET in assets:
        outcomes.append(
            _run(defs, instance, (TIMINGS_ASSET,), _timing_key(start), _timing_key(end))
        )
    for block in blocks:
        if outcomes and not outcomes[-1].success:
            break
        outcomes.append(
            _run(
                defs,
                instance,
                per_ticker,
                TickerDay(start, block[0]).key,
                TickerDay(end, block[-1]).key,
            )
        )
    return outcomes


def _timing_key(day: date) -> str:
    key = day.isoformat()
    if not timing_date_partitions.has_partition_key(key):
        raise RunRequestError(f"{day} is outside the market_timings partitions")
    return key


def _run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    assets: tuple[str, ...],
    first_key: str,
    last_key: str,
) -> RunOutcome:
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in assets],
        tags=range_tags(first_key, last_key),
        run_config={"loggers": {"console": {"config": {"log_level": get_settings().log_level}}}},
        raise_on_error=False,
    )
    return RunOutcome(
        run_id=result.run_id,
        assets=assets,
        first_key=first_key,
        last_key=last_key,
        success=result.success,
        error=None if result.success else _failure_message(result),
    )


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    return failure_message(result.all_events)


def failure_message(events: Iterable[dg.DagsterEvent]) -> str:
    """The root cause of each failed step among `events`, without Dagster's wrapping."""
    messages = []
    for event in events:
        if not (event.is_step_failure and event.step_failure_data):
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            messages.append(f"{event.step_key}: {error.message.strip()}")
    return "\n".join(messages) or "the run failed; see the Dagster UI for its logs"


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """The tags that make one run cover the partitions from `first_key` to `last_key`."""
    return {ASSET_PARTITION_RANGE_START_TAG: first_key, ASSET_PARTITION_RANGE_END_TAG: last_key}


@dataclass(frozen=True)
class Rectangle:
    """Days `start`..`end` x tickers adjacent in registration order: what one run can cover."""

    start: date
    end: date
    tickers: tuple[str, ...]

    @property
    def first_key(self) -> str:
        return TickerDay(self.start, self.tickers[0]).key

    @property
    def last_key(self) -> str:
        return TickerDay(self.end, self.tickers[-1]).key

    @property
    def tags(self) -> dict[str, str]:
        return range_tags(self.first_key, self.last_key)


def rectangles(
    tickers_by_day: Mapping[date, Sequence[str]], registered: Sequence[str]
) -> list[Rectangle]:
    """Cover exactly the given ticker-days with few runs.

    Consecutive days that need the same tickers share a run; within a day, tickers split into
    blocks adjacent in registration order (a run's range is a rectangle in that order).
    """
    spans: list[tuple[date, date, frozenset[str]]] = []
    for day in sorted(day for day, tickers in tickers_by_day.items() if tickers):
        wanted = frozenset(tickers_by_day[day])
        if spans and spans[-1][2] == wanted and spans[-1][1] + timedelta(days=1) == day:
            spans[-1] = (spans[-1][0], day, wanted)
        else:
            spans.append((day, day, wanted))
    return [
        Rectangle(start, end, tuple(block))
        for start, end, wanted in spans
        for block in ticker_blocks(registered, sorted(wanted))
    ]
