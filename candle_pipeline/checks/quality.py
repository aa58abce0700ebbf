"""The asset checks of `validated_quotes`, evaluated in its own step.

- `quality_score` (ERROR, blocking): one evaluation per ticker-day, `score >= threshold`.
- `spikes`, `gaps`, `stale_runs` (WARN): one evaluation per run, with a few offending rows.

Why the blocking check's evaluations do not ask Dagster to stop the step: Dagster enforces a
blocking check per *step*, and a step of this project covers every partition of a run (single-run
backfills). A failed evaluation marked blocking would stop `candles` for the good ticker-days of
the run too. So the gate is enforced per ticker-day by `candles` itself, from the stored score
(`market.quality_reports`): a bad ticker-day gets no candles and no materialisation, the good ones
do, and `candles` then fails the run naming the blocked ticker-days. The spec stays `blocking`
so the UI and declarative automation (`all_deps_blocking_checks_passed`) treat it as the gate.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence

import dagster as dg
import pandas as pd

from candle_pipeline.domain.bars import PRICE_COLUMNS
from candle_pipeline.domain.quality import (
    FLAG_COLUMNS,
    FLAG_NAMES,
    STATUS_SCORED,
    PartitionQuality,
    QualityRules,
    Validation,
    flagged_rows,
)
from candle_pipeline.partitions import TickerDay, ticker_day_partitions
from candle_pipeline.settings import OFFENDING_ROWS_SHOWN

VALIDATED_QUOTES = dg.AssetKey("validated_quotes")
QUALITY_SCORE = "quality_score"
SPIKES = "spikes"
GAPS = "gaps"
STALE_RUNS = "stale_runs"
# Metadata key of the score, on materialisations and check evaluations alike.
SCORE_KEY = "quality_score"
# Metadata key of the ticker-days a failed run-level check is about (the first few): with the
# check and its partition, what makes two failures the same one for the alerts.
OFFENDING_KEY = "offending_partitions"

QUALITY_SCORE_CHECK = dg.AssetCheckSpec(
    QUALITY_SCORE,
    asset=VALIDATED_QUOTES,
    blocking=True,
    partitions_def=ticker_day_partitions,
    description=(
        "ERROR: the ticker-day's quality score (completeness x validity x consistency) is at "
        "least the threshold (CANDLE_QUALITY_THRESHOLD). A ticker-day below it never becomes "
        "candles."
    ),
)
WARNING_CHECKS = (
    dg.AssetCheckSpec(
        SPIKES,
        asset=VALIDATED_QUOTES,
        description="WARN: no bar moves more than the spike threshold from the previous close "
        "without a split or dividend to explain it.",
    ),
    dg.AssetCheckSpec(
        GAPS,
        asset=VALIDATED_QUOTES,
        description="WARN: no run of consecutive regular-session bars is missing (or unusable) "
        "against the bars market_timings expects.",
    ),
    dg.AssetCheckSpec(
        STALE_RUNS,
        asset=VALIDATED_QUOTES,
        description="WARN: no long run of identical closes with zero volume.",
    ),
)
VALIDATED_QUOTES_CHECKS = (QUALITY_SCORE_CHECK, *WARNING_CHECKS)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _key(report: PartitionQuality) -> str:
    return TickerDay(report.trade_date, report.ticker).key


def named(keys: Sequence[str]) -> str:
    """The first few partition keys, and `...` when there are more."""
    shown = ", ".join(keys[:OFFENDING_ROWS_SHOWN])
    return f"{shown} ..." if len(keys) > OFFENDING_ROWS_SHOWN else shown


def score_metadata(report: PartitionQuality, threshold: float) -> dict[str, object]:
    """The score and its components; no score (nothing to plot) on a closed market day."""
    if report.status != STATUS_SCORED:
        return {"status": report.status}
    return {
        "status": report.status,
        SCORE_KEY: dg.MetadataValue.float(_rounded(report.score)),
        "completeness": dg.MetadataValue.float(_rounded(report.completeness)),
        "validity": dg.MetadataValue.float(_rounded(report.validity)),
        "consistency": dg.MetadataValue.float(_rounded(report.consistency)),
        "threshold": dg.MetadataValue.float(threshold),
    }


def partition_metadata(
    validation: Validation, reports: Sequence[PartitionQuality], threshold: float
) -> dict[str, dict[str, object]]:
    """Per partition key: score, components, counts and the first rows that failed a rule."""
    failed = _failed_rows_by_partition(validation.quotes)
    metadata = {}
    for report in reports:
        entry = {
            **score_metadata(report, threshold),
            "rows": report.rows,
            "valid_rows": report.valid_rows,
            "regular_bars": report.regular_bars,
            "expected_bars": report.expected_bars,
            "missing_bars": report.missing_bars,
            "gaps": len(report.gaps),
            "regular_spikes": report.regular_spikes,
            **{f"flagged_{name}": count for name, count in report.flag_counts.items()},
        }
        rows = failed.get((pd.Timestamp(report.trade_date), report.ticker))
        if rows is not None:
            entry["failed_rows"] = dg.MetadataValue.md(rows.to_markdown(index=False))
        metadata[_key(report)] = entry
    return metadata


def _failed_rows_by_partition(quotes: pd.DataFrame) -> dict[tuple[pd.Timestamp, str], pd.DataFrame]:
    invalid = quotes[~quotes["is_valid"]]
    if invalid.empty:
        return {}
    shown = invalid.groupby(["trade_date", "ticker"]).head(OFFENDING_ROWS_SHOWN)
    names = pd.Series(FLAG_NAMES, index=list(FLAG_COLUMNS))
    flags = shown[list(FLAG_COLUMNS)].apply(lambda row: ", ".join(names[row]), axis=1)
    table = shown.loc[:, ["trade_date", "ticker", "ts", "session", *PRICE_COLUMNS, "volume"]]
    table = table.assign(flags=flags)
    return {
        key: rows.drop(columns=["trade_date", "ticker"])
        for key, rows in table.groupby(["trade_date", "ticker"])
    }


def score_evaluations(
    reports: Iterable[PartitionQuality], threshold: float
) -> Iterator[dg.AssetCheckEvaluation]:
    """One `quality_score` evaluation per ticker-day (see the module's docstring on blocking)."""
    for report in reports:
        yield dg.AssetCheckEvaluation(
            asset_key=VALIDATED_QUOTES,
            check_name=QUALITY_SCORE,
            passed=report.passed(threshold),
            severity=dg.AssetCheckSeverity.ERROR,
            description=report.verdict(threshold),
            blocking=False,
            partition=_key(report),
            metadata={
                "ticker": report.ticker,
                "day": report.trade_date.isoformat(),
                **score_metadata(report, threshold),
            },
        )


def warning_results(
    validation: Validation, reports: Sequence[PartitionQuality], rules: QualityRules
) -> Mapping[str, dg.AssetCheckResult]:
    """The run-level WARN results, by check name."""
    return {
        SPIKES: _flag_result(
            SPIKES, validation, "spike", {"spike_threshold": rules.spike_threshold}
        ),
        STALE_RUNS: _flag_result(
            STALE_RUNS, validation, "stale", {"stale_run_bars": rules.stale_run_bars}
        ),
        GAPS: _gaps_result(reports, rules),
    }


def _flag_result(
    check: str, validation: Validation, flag: str, rule: Mapping[str, float]
) -> dg.AssetCheckResult:
    quotes = validation.quotes
    hit = quotes[quotes[f"flag_{flag}"]]
    partitions = hit.groupby(["trade_date", "ticker"]).size()
    metadata: dict[str, object] = {"flagged_rows": len(hit), "partitions": len(partitions), **rule}
    if len(hit):
        rows = flagged_rows(validation, flag, OFFENDING_ROWS_SHOWN)
        if flag != "spike":
            rows = rows.drop(columns=["reference", "move"])
        metadata["offending_rows"] = dg.MetadataValue.md(rows.to_markdown(index=False))
        metadata[OFFENDING_KEY] = named(
            [TickerDay(day.date(), ticker).key for day, ticker in partitions.index]
        )
    return dg.AssetCheckResult(
        check_name=check,
        asset_key=VALIDATED_QUOTES,
        passed=hit.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(hit)} row(s) flagged {flag} in {len(partitions)} ticker-day(s)",
        metadata=metadata,
    )


def _gaps_result(reports: Sequence[PartitionQuality], rules: QualityRules) -> dg.AssetCheckResult:
    gaps = [(report, gap) for report in reports for gap in report.gaps]
    affected = {_key(report) for report, _ in gaps}
    metadata: dict[str, object] = {
        "gaps": len(gaps),
        "partitions": len(affected),
        "missing_bars": sum(report.missing_bars for report in reports),
        "gap_min_bars": rules.gap_min_bars,
    }
    if gaps:
        table = pd.DataFrame(
            {
                "ticker": [report.ticker for report, _ in gaps],
                "trade_date": [report.trade_date for report, _ in gaps],
                "start": [gap.start for _, gap in gaps],
                "bars": [gap.bars for _, gap in gaps],
            }
        ).head(OFFENDING_ROWS_SHOWN)
        metadata["offending_gaps"] = dg.MetadataValue.md(table.to_markdown(index=False))
        metadata[OFFENDING_KEY] = named(sorted(affected))
    return dg.AssetCheckResult(
        check_name=GAPS,
        asset_key=VALIDATED_QUOTES,
        passed=not gaps,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(gaps)} gap(s) in {len(affected)} ticker-day(s)",
        metadata=metadata,
    )
