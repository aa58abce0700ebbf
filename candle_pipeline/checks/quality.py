"""The checks of the market data, evaluated in the step that materialises the days.

The two ERROR checks are partitioned like the assets: one evaluation per day partition, naming
the ticker-days it is about. The WARN checks are one evaluation per run, over the run's days:
Dagster stores each evaluation on its own, and three more per day would be most of a decades-long
backfill's bookkeeping (docs/benchmarks.md).

- `validated_quotes / quality_score` (ERROR): every scored ticker-day of the day scores at least
  the threshold. A ticker-day below it is blocked in the step itself (no candles) and does not
  hold up the others, so the check is not `blocking`: it reports, the gate is in the step.
- `raw_quotes / coverage` (ERROR): every open session of a watched ticker has data; it names the
  ticker-days without (no data, failed, waiting for a retry) and their status.
- `validated_quotes / spikes`, `gaps`, `stale_runs` (WARN): what the rules found in the stored
  bars of the run's ticker-days, with examples from the bars this run validated.

The day evaluations are `AssetCheckEvaluation` events, one per day, because one run covers many
days.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg
import pandas as pd

from candle_pipeline.assets.types import RAW_QUOTES, VALIDATED_QUOTES
from candle_pipeline.dagster_internals import CheckTarget as Target
from candle_pipeline.domain.quality import Assessment, QualityRules, Validation, flagged_rows
from candle_pipeline.domain.ticker_days import BLOCKED, CLOSED, MISSING, NO_DATA
from candle_pipeline.partitions import day_key

# Offending rows (or gaps) shown in a check's metadata and in a partition's metadata.
OFFENDING_ROWS_SHOWN = 5
QUALITY_SCORE = "quality_score"
COVERAGE = "coverage"
SPIKES = "spikes"
GAPS = "gaps"
STALE_RUNS = "stale_runs"
# Metadata key of the ticker-days a failed evaluation is about (the first few, then `...`): with
# the check and its day, what makes two failures the same one for the alerts.
OFFENDING_KEY = "offending_ticker_days"
# How many ticker-days a failed evaluation is about (OFFENDING_KEY names the first few).
OFFENDING_COUNT_KEY = "offending_count"
# Metadata key of a day's lowest quality score, on materialisations and evaluations alike.
SCORE_KEY = "quality_score_min"

QUALITY_SCORE_CHECK = dg.AssetCheckKey(VALIDATED_QUOTES, QUALITY_SCORE)
COVERAGE_CHECK = dg.AssetCheckKey(RAW_QUOTES, COVERAGE)
WARNING_CHECKS = (
    dg.AssetCheckSpec(
        SPIKES,
        asset=VALIDATED_QUOTES,
        description="WARN: no bar of the run's days moves more than the spike threshold from "
        "the previous close without a split or dividend to explain it.",
    ),
    dg.AssetCheckSpec(
        GAPS,
        asset=VALIDATED_QUOTES,
        description="WARN: in the run's days, no run of consecutive regular-session bars is "
        "missing (or unusable) against the bars market_timings expects.",
    ),
    dg.AssetCheckSpec(
        STALE_RUNS,
        asset=VALIDATED_QUOTES,
        description="WARN: in the run's days, no long run of identical closes with zero volume.",
    ),
)


def check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """The checks of `market_data`: one evaluation per day of `partitions` for the quality
    score and the coverage, and the warnings about the run's days."""
    return [
        dg.AssetCheckSpec(
            QUALITY_SCORE,
            asset=VALIDATED_QUOTES,
            partitions_def=partitions,
            description=(
                "ERROR: every scored ticker-day of the day has a quality score (completeness x "
                "validity x consistency) of at least CANDLE_QUALITY_THRESHOLD; one below never "
                "becomes candles."
            ),
        ),
        dg.AssetCheckSpec(
            COVERAGE,
            asset=RAW_QUOTES,
            partitions_def=partitions,
            description=(
                "ERROR: every open session of a watched ticker has data; names the ticker-days "
                "without (no_data, failed, retry_later) and their status."
            ),
        ),
        *WARNING_CHECKS,
    ]


def offending_metadata(items: Sequence[str]) -> dict[str, object]:
    """The ticker-days a failed evaluation is about: the first few by name, and how many."""
    return {OFFENDING_KEY: named(items), OFFENDING_COUNT_KEY: len(items)}


def named(items: Sequence[str]) -> str:
    """The first few items, and `... (N in all)` when there are more."""
    shown = ", ".join(items[:OFFENDING_ROWS_SHOWN])
    return f"{shown} ... ({len(items)} in all)" if len(items) > OFFENDING_ROWS_SHOWN else shown


DAY_CHECKS = (QUALITY_SCORE_CHECK, COVERAGE_CHECK)

Targets = Mapping[tuple[dg.AssetKey, str], Target]


def day_evaluations(
    final: pd.DataFrame,
    days: Sequence[date],
    threshold: float,
    selected: set[dg.AssetCheckKey],
    targets: Targets,
) -> Iterator[dg.AssetCheckEvaluation]:
    """The quality and coverage evaluations of each day, from the states of its ticker-days after
    the run (`final`): what is stored, whether this run wrote it or an earlier one. What each
    day needs is computed for all days at once: a run may cover a year. Each evaluation names
    the day's materialisation it checked (`targets`), which is how Dagster tells a current check
    from one of an older materialisation."""
    facts = _DayFacts.of(final)
    for day in days:
        if QUALITY_SCORE_CHECK in selected:
            target = targets.get((VALIDATED_QUOTES, day_key(day)))
            yield _quality_score(day, facts, threshold, target)
        if COVERAGE_CHECK in selected:
            yield _coverage(day, facts, targets.get((RAW_QUOTES, day_key(day))))


def checked_materializations(
    instance: dg.DagsterInstance,
    run_id: str,
    days: Sequence[date],
    selected: set[dg.AssetCheckKey],
) -> Targets:
    """Per asset with a selected day check and per day, the materialisation this run recorded:
    one query per asset for all the run's days."""
    keys = [day_key(day) for day in days]
    checked = {key.asset_key for key in DAY_CHECKS if key in selected}
    targets: dict[tuple[dg.AssetKey, str], Target] = {}
    for asset_key in checked:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=keys), limit=len(keys)
        ).records
        for record in records:
            if record.run_id == run_id and record.partition_key is not None:
                targets[(asset_key, record.partition_key)] = Target(
                    storage_id=record.storage_id, run_id=run_id, timestamp=record.timestamp
                )
    return targets


def run_warnings(
    final: pd.DataFrame,
    *,
    validation: Validation,
    assessment: Assessment,
    rules: QualityRules,
    selected: set[dg.AssetCheckKey],
) -> Iterator[dg.AssetCheckResult]:
    """The warning checks over the run's days, from what is stored for their ticker-days, with
    examples of the rows and gaps this run's validation found."""
    flags = (
        (SPIKES, "spike", {"spike_threshold": rules.spike_threshold}),
        (STALE_RUNS, "stale", {"stale_run_bars": rules.stale_run_bars}),
    )
    for check, flag, rule in flags:
        if dg.AssetCheckKey(VALIDATED_QUOTES, check) in selected:
            examples = flagged_rows(validation, flag, OFFENDING_ROWS_SHOWN)
            yield _flag_result(check, final, flag=flag, rule=rule, examples=examples)
    if dg.AssetCheckKey(VALIDATED_QUOTES, GAPS) in selected:
        yield _gaps_result(final, assessment.gaps, rules)


def _cause(lacking: pd.DataFrame) -> pd.Series:
    """Why each ticker-day is missing: `no data from <source>` for a day the provider answered
    without bars, else its status."""
    no_data = lacking["status"].eq(NO_DATA) & lacking["last_error"].notna()
    return lacking["last_error"].where(no_data, lacking["status"])


@dataclass(frozen=True)
class _DayFacts:
    """Per day: the counts and the offending ticker-days of the day checks."""

    counts: pd.DataFrame
    blocked: Mapping[date, list[str]]
    missing: Mapping[date, list[str]]

    @classmethod
    def of(cls, final: pd.DataFrame) -> "_DayFacts":
        day = final["trade_date"].dt.date
        scored = final["quality_score"].notna()
        missing = final["status"].isin(MISSING)
        counts = (
            pd.DataFrame(
                {
                    "scored": scored,
                    "open": final["status"] != CLOSED,
                    **{status: final["status"] == status for status in MISSING},
                }
            )
            .groupby(day)
            .sum()
        )
        counts["score_min"] = final["quality_score"].where(scored).groupby(day).min()
        blocked = final[final["status"] == BLOCKED].sort_values("quality_score")
        lacking = final[missing].sort_values("ticker")
        return cls(
            counts=counts,
            blocked=_by_day(blocked, blocked["ticker"] + " " + _four(blocked["quality_score"])),
            missing=_by_day(lacking, lacking["ticker"] + " (" + _cause(lacking) + ")"),
        )

    def count(self, day: date, column: str) -> int:
        return int(self.counts.at[day, column]) if day in self.counts.index else 0

    def score_min(self, day: date) -> float | None:
        if day not in self.counts.index or pd.isna(self.counts.at[day, "score_min"]):
            return None
        return float(self.counts.at[day, "score_min"])


def _by_day(rows: pd.DataFrame, labels: pd.Series) -> dict[date, list[str]]:
    """Per day, the labels of `rows` in their order."""
    if rows.empty:
        return {}
    return labels.groupby(rows["trade_date"].dt.date).agg(list).to_dict()


def _four(scores: pd.Series) -> pd.Series:
    return scores.map("{:.4f}".format)


def _quality_score(
    day: date, facts: _DayFacts, threshold: float, target: Target | None
) -> dg.AssetCheckEvaluation:
    scored, offending = facts.count(day, "scored"), facts.blocked.get(day, [])
    metadata: dict[str, object] = {
        "scored_ticker_days": scored,
        "blocked_ticker_days": len(offending),
        "threshold": threshold,
    }
    lowest = facts.score_min(day)
    if lowest is not None:
        metadata[SCORE_KEY] = dg.MetadataValue.float(round(lowest, 4))
    if offending:
        metadata.update(offending_metadata(offending))
    return dg.AssetCheckEvaluation(
        asset_key=VALIDATED_QUOTES,
        check_name=QUALITY_SCORE,
        partition=day_key(day),
        target_materialization_data=target,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(offending)} of {scored} scored ticker-day(s) below {threshold}: "
            f"{named(offending)}"
            if offending
            else f"all {scored} scored ticker-day(s) at or above {threshold}"
        ),
        metadata=metadata,
    )


def _coverage(day: date, facts: _DayFacts, target: Target | None) -> dg.AssetCheckEvaluation:
    open_days, offending = facts.count(day, "open"), facts.missing.get(day, [])
    metadata: dict[str, object] = {
        "open_ticker_days": open_days,
        "missing_ticker_days": len(offending),
        **{status: facts.count(day, status) for status in MISSING},
    }
    if offending:
        metadata.update(offending_metadata(offending))
    return dg.AssetCheckEvaluation(
        asset_key=RAW_QUOTES,
        check_name=COVERAGE,
        partition=day_key(day),
        target_materialization_data=target,
        passed=not offending,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(offending)} of {open_days} open ticker-day(s) without data: {named(offending)}"
            if offending
            else f"all {open_days} open ticker-day(s) have data"
        ),
        metadata=metadata,
    )


def _counted(final: pd.DataFrame, column: str) -> tuple[int, list[str]]:
    """The total of `column` and the ticker-days where it is above zero, as `SPY 2013-10-09 (1)`."""
    hit = final[final[column] > 0].sort_values(["trade_date", "ticker"])
    labels = (
        hit["ticker"]
        + " "
        + hit["trade_date"].dt.strftime("%Y-%m-%d")
        + " ("
        + hit[column].astype(str)
        + ")"
    )
    return int(hit[column].sum()), labels.tolist()


def _flag_result(
    check: str,
    final: pd.DataFrame,
    *,
    flag: str,
    rule: Mapping[str, float],
    examples: pd.DataFrame,
) -> dg.AssetCheckResult:
    rows, offending = _counted(final, f"{flag}_rows")
    metadata: dict[str, object] = {"flagged_rows": rows, "ticker_days": len(offending), **rule}
    if offending:
        metadata.update(offending_metadata(offending))
    if len(examples):
        shown = examples if flag == "spike" else examples.drop(columns=["reference", "move"])
        metadata["offending_rows"] = dg.MetadataValue.md(shown.to_markdown(index=False))
    return dg.AssetCheckResult(
        asset_key=VALIDATED_QUOTES,
        check_name=check,
        passed=not offending,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rows} row(s) flagged {flag} in {len(offending)} ticker-day(s)",
        metadata=metadata,
    )


def _gaps_result(
    final: pd.DataFrame, found: pd.DataFrame, rules: QualityRules
) -> dg.AssetCheckResult:
    gaps, offending = _counted(final, "gaps")
    metadata: dict[str, object] = {
        "gaps": gaps,
        "ticker_days": len(offending),
        "gap_min_bars": rules.gap_min_bars,
    }
    if offending:
        metadata.update(offending_metadata(offending))
    if len(found):
        examples = found.head(OFFENDING_ROWS_SHOWN).assign(
            trade_date=lambda frame: frame["trade_date"].dt.date
        )
        metadata["offending_gaps"] = dg.MetadataValue.md(examples.to_markdown(index=False))
    return dg.AssetCheckResult(
        asset_key=VALIDATED_QUOTES,
        check_name=GAPS,
        passed=not offending,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{gaps} gap(s) of at least {rules.gap_min_bars} missing bars in {len(offending)} "
            "ticker-day(s) (quiet minutes without a trade only lower completeness)"
        ),
        metadata=metadata,
    )
