"""The per-day checks of the market data, evaluated in the step that materialises the days.

Every check is partitioned like the assets: one evaluation per day partition, naming the
ticker-days it is about.

- `validated_quotes / quality_score` (ERROR): every scored ticker-day of the day scores at least
  the threshold. A ticker-day below it is blocked in the step itself (no candles) and does not
  hold up the others, so the check is not `blocking`: it reports, the gate is in the step.
- `raw_quotes / coverage` (ERROR): every open session of a watched ticker has data; it names the
  ticker-days without (no data, failed, waiting for a retry) and their status.
- `validated_quotes / spikes`, `gaps`, `stale_runs` (WARN): what the rules found in the stored
  bars of the day's ticker-days, with examples from the bars this run validated.

Evaluations are `AssetCheckEvaluation` events, one per day, because one run covers many days.
"""

from collections.abc import Iterator, Mapping, Sequence
from datetime import date

import dagster as dg
import pandas as pd

from candle_pipeline.domain.quality import (
    PartitionQuality,
    QualityRules,
    Validation,
    flagged_rows,
)
from candle_pipeline.domain.ticker_days import BLOCKED, MISSING
from candle_pipeline.partitions import day_key, day_partitions
from candle_pipeline.settings import OFFENDING_ROWS_SHOWN

RAW_QUOTES = dg.AssetKey("raw_quotes")
VALIDATED_QUOTES = dg.AssetKey("validated_quotes")
QUALITY_SCORE = "quality_score"
COVERAGE = "coverage"
SPIKES = "spikes"
GAPS = "gaps"
STALE_RUNS = "stale_runs"
# Metadata key of the ticker-days a failed evaluation is about (the first few, then `...`): with
# the check and its day, what makes two failures the same one for the alerts.
OFFENDING_KEY = "offending_ticker_days"
# Metadata key of a day's lowest quality score, on materialisations and evaluations alike.
SCORE_KEY = "quality_score_min"

QUALITY_SCORE_CHECK = dg.AssetCheckSpec(
    QUALITY_SCORE,
    asset=VALIDATED_QUOTES,
    partitions_def=day_partitions,
    description=(
        "ERROR: every scored ticker-day of the day has a quality score (completeness x validity "
        "x consistency) of at least CANDLE_QUALITY_THRESHOLD; one below never becomes candles."
    ),
)
COVERAGE_CHECK = dg.AssetCheckSpec(
    COVERAGE,
    asset=RAW_QUOTES,
    partitions_def=day_partitions,
    description=(
        "ERROR: every open session of a watched ticker has data; names the ticker-days without "
        "(no_data, failed, retry_later) and their status."
    ),
)
WARNING_CHECKS = (
    dg.AssetCheckSpec(
        SPIKES,
        asset=VALIDATED_QUOTES,
        partitions_def=day_partitions,
        description="WARN: no bar moves more than the spike threshold from the previous close "
        "without a split or dividend to explain it.",
    ),
    dg.AssetCheckSpec(
        GAPS,
        asset=VALIDATED_QUOTES,
        partitions_def=day_partitions,
        description="WARN: no run of consecutive regular-session bars is missing (or unusable) "
        "against the bars market_timings expects.",
    ),
    dg.AssetCheckSpec(
        STALE_RUNS,
        asset=VALIDATED_QUOTES,
        partitions_def=day_partitions,
        description="WARN: no long run of identical closes with zero volume.",
    ),
)
CHECK_SPECS = (QUALITY_SCORE_CHECK, COVERAGE_CHECK, *WARNING_CHECKS)


def named(items: Sequence[str]) -> str:
    """The first few items, and `... (N in all)` when there are more."""
    shown = ", ".join(items[:OFFENDING_ROWS_SHOWN])
    return f"{shown} ... ({len(items)} in all)" if len(items) > OFFENDING_ROWS_SHOWN else shown


def day_evaluations(
    final: pd.DataFrame,
    days: Sequence[date],
    *,
    validation: Validation,
    reports: Sequence[PartitionQuality],
    rules: QualityRules,
    selected: set[dg.AssetCheckKey],
) -> Iterator[dg.AssetCheckEvaluation]:
    """Every selected check's evaluation of each day, from the states of its ticker-days after
    the run (`final`): what is stored, whether this run wrote it or an earlier one. The rows and
    gaps found by this run's validation are shown as examples."""
    by_day = dict(iter(final.groupby(final["trade_date"].dt.date)))
    reports_by_day: dict[date, list[PartitionQuality]] = {}
    for report in reports:
        reports_by_day.setdefault(report.trade_date, []).append(report)
    empty_states = final.iloc[0:0]
    for day in days:
        states = by_day.get(day, empty_states)
        if QUALITY_SCORE_CHECK.key in selected:
            yield _quality_score(day, states, rules.threshold)
        if COVERAGE_CHECK.key in selected:
            yield _coverage(day, states)
        for check, flag, rule in (
            (SPIKES, "spike", {"spike_threshold": rules.spike_threshold}),
            (STALE_RUNS, "stale", {"stale_run_bars": rules.stale_run_bars}),
        ):
            if dg.AssetCheckKey(VALIDATED_QUOTES, check) in selected:
                yield _flag_evaluation(
                    day,
                    check,
                    states=states,
                    validation=validation,
                    flag=flag,
                    rule=rule,
                )
        if dg.AssetCheckKey(VALIDATED_QUOTES, GAPS) in selected:
            yield _gaps(day, states, reports_by_day.get(day, []), rules)


def _evaluation(
    asset: dg.AssetKey,
    check: str,
    day: date,
    *,
    passed: bool,
    severity: dg.AssetCheckSeverity,
    description: str,
    metadata: Mapping[str, object],
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset,
        check_name=check,
        passed=passed,
        severity=severity,
        description=description,
        partition=day_key(day),
        metadata=dict(metadata),
    )


def _quality_score(day: date, states: pd.DataFrame, threshold: float) -> dg.AssetCheckEvaluation:
    scored = states[states["quality_score"].notna()]
    blocked = scored[scored["status"] == BLOCKED].sort_values("quality_score")
    offending = [
        f"{ticker} {score:.4f}"
        for ticker, score in zip(blocked["ticker"], blocked["quality_score"], strict=True)
    ]
    metadata: dict[str, object] = {
        "scored_ticker_days": len(scored),
        "blocked_ticker_days": len(blocked),
        "threshold": threshold,
    }
    if len(scored):
        metadata[SCORE_KEY] = dg.MetadataValue.float(round(float(scored["quality_score"].min()), 4))
    if offending:
        metadata[OFFENDING_KEY] = named(offending)
    return _evaluation(
        VALIDATED_QUOTES,
        QUALITY_SCORE,
        day,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(blocked)} of {len(scored)} scored ticker-day(s) below {threshold}: "
            f"{named(offending)}"
            if offending
            else f"all {len(scored)} scored ticker-day(s) at or above {threshold}"
        ),
        metadata=metadata,
    )


def _coverage(day: date, states: pd.DataFrame) -> dg.AssetCheckEvaluation:
    missing = states[states["status"].isin(MISSING)].sort_values("ticker")
    offending = [
        f"{ticker} ({status})"
        for ticker, status in zip(missing["ticker"], missing["status"], strict=True)
    ]
    open_days = int((states["status"] != "closed").sum())
    metadata: dict[str, object] = {
        "open_ticker_days": open_days,
        "missing_ticker_days": len(missing),
        **{status: int((missing["status"] == status).sum()) for status in MISSING},
    }
    if offending:
        metadata[OFFENDING_KEY] = named(offending)
    return _evaluation(
        RAW_QUOTES,
        COVERAGE,
        day,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(missing)} of {open_days} open ticker-day(s) without data: {named(offending)}"
            if offending
            else f"all {open_days} open ticker-day(s) have data"
        ),
        metadata=metadata,
    )


def _flag_evaluation(
    day: date,
    check: str,
    *,
    states: pd.DataFrame,
    validation: Validation,
    flag: str,
    rule: Mapping[str, float],
) -> dg.AssetCheckEvaluation:
    column = f"{flag}_rows"
    hit = states[states[column] > 0].sort_values("ticker")
    rows = int(hit[column].sum())
    metadata: dict[str, object] = {"flagged_rows": rows, "ticker_days": len(hit), **rule}
    if len(hit):
        metadata[OFFENDING_KEY] = named(
            [
                f"{ticker} ({count})"
                for ticker, count in zip(hit["ticker"], hit[column], strict=True)
            ]
        )
    examples = flagged_rows(validation, flag, OFFENDING_ROWS_SHOWN, day).drop(columns="trade_date")
    if len(examples):
        if flag != "spike":
            examples = examples.drop(columns=["reference", "move"])
        metadata["offending_rows"] = dg.MetadataValue.md(examples.to_markdown(index=False))
    return _evaluation(
        VALIDATED_QUOTES,
        check,
        day,
        passed=hit.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rows} row(s) flagged {flag} in {len(hit)} ticker-day(s)",
        metadata=metadata,
    )


def _gaps(
    day: date, states: pd.DataFrame, reports: Sequence[PartitionQuality], rules: QualityRules
) -> dg.AssetCheckEvaluation:
    hit = states[states["gaps"] > 0].sort_values("ticker")
    gaps = int(hit["gaps"].sum())
    metadata: dict[str, object] = {
        "gaps": gaps,
        "ticker_days": len(hit),
        "gap_min_bars": rules.gap_min_bars,
    }
    if len(hit):
        metadata[OFFENDING_KEY] = named(
            [
                f"{ticker} ({count})"
                for ticker, count in zip(hit["ticker"], hit["gaps"], strict=True)
            ]
        )
    found = [(report, gap) for report in reports for gap in report.gaps]
    if found:
        table = pd.DataFrame(
            {
                "ticker": [report.ticker for report, _ in found],
                "start": [gap.start for _, gap in found],
                "bars": [gap.bars for _, gap in found],
            }
        ).head(OFFENDING_ROWS_SHOWN)
        metadata["offending_gaps"] = dg.MetadataValue.md(table.to_markdown(index=False))
    return _evaluation(
        VALIDATED_QUOTES,
        GAPS,
        day,
        passed=hit.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{gaps} gap(s) of at least {rules.gap_min_bars} missing bars in {len(hit)} "
            "ticker-day(s) (quiet minutes without a trade only lower completeness)"
        ),
        metadata=metadata,
    )
