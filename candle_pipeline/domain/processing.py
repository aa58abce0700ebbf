"""From raw bars to candles in memory: validate, score, gate and aggregate every ticker-day of a
run at once. Nothing here reads or writes a table.

A ticker-day whose quality score is below the threshold is blocked: it gets no candles. Only
valid bars of the regular session of ticker-days that passed become candles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from candle_pipeline.domain.candles import aggregate
from candle_pipeline.domain.quality import (
    Assessment,
    QualityRules,
    Validation,
    assess,
    validate_quotes,
)
from candle_pipeline.domain.sessions import SESSION_REGULAR, ExchangeDirectory, attach_sessions

KEY = ["trade_date", "ticker"]


@dataclass(frozen=True)
class Processed:
    """What one run made of its bars.

    `validation`: every bar flagged (and the close each spike move was measured from);
    `assessment`: the quality of each ticker-day that has bars; `candles`: those of the
    ticker-days that passed the gate; `stored`: per ticker-day with bars what
    `ticker_days.Outcome.stored` holds (rows, source, fetch time, latest bar, score and warning
    counts, the gate's decision).
    """

    validation: Validation
    assessment: Assessment
    candles: pd.DataFrame
    stored: pd.DataFrame


def process(
    raw: pd.DataFrame,
    timings: pd.DataFrame,
    exchanges: ExchangeDirectory,
    rules: QualityRules,
    intervals: Sequence[str],
    *,
    factors: pd.DataFrame | None = None,
    previous_closes: pd.DataFrame | None = None,
) -> Processed:
    """Validate raw bars (spikes measured across the actions of the adjustment `factors` and from
    `previous_closes`), then score, gate and aggregate them (`rebuild`)."""
    validation = validate_quotes(
        raw, timings, exchanges, rules, factors=factors, previous_closes=previous_closes
    )
    return rebuild(validation, timings, exchanges, rules, intervals)


def rebuild(
    validation: Validation,
    timings: pd.DataFrame,
    exchanges: ExchangeDirectory,
    rules: QualityRules,
    intervals: Sequence[str],
) -> Processed:
    """Score, gate and aggregate bars that are validated already."""
    quotes = validation.quotes
    assessment = assess(validation, timings, exchanges, quotes.loc[:, KEY], rules)
    reports = assessment.reports
    verdicts = pd.DataFrame(
        {
            "trade_date": reports["trade_date"],
            "ticker": reports["ticker"],
            "quality_score": reports["score"],
            "spike_rows": reports["spike_rows"],
            "stale_rows": reports["stale_rows"],
            "gaps": reports["gaps"],
            "passed": assessment.passed(rules.threshold),
            "verdict": assessment.verdicts(rules.threshold),
        }
    )
    stored = (
        quotes.groupby(KEY, sort=False)
        .agg(
            rows=("ts", "size"),
            source=("source", "first"),
            fetched_at=("fetched_at", "max"),
            last_bar_at=("ts", "max"),
        )
        .reset_index()
        .merge(verdicts, on=KEY, how="left")
    )
    passed = pd.MultiIndex.from_frame(stored.loc[stored["passed"], KEY])
    usable = quotes[
        (quotes["session"] == SESSION_REGULAR)
        & quotes["is_valid"]
        & pd.MultiIndex.from_frame(quotes[KEY]).isin(passed)
    ]
    return Processed(
        validation=validation,
        assessment=assessment,
        candles=aggregate(attach_sessions(usable, timings, exchanges), intervals),
        stored=stored,
    )
