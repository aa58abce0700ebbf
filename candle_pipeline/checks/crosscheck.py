"""`validated_quotes / source_mismatch` (WARN, one evaluation per day): the closes of the day's
cross-checked ticker-days agree with a second source within CANDLE_CROSSCHECK_TOLERANCE.

Evaluated in two places, with the same comparison (`domain.crosscheck`):
- in the `market_data` step, for the ticker-days a fallback source served, against the first
  source of the ticker's chain that neither served nor failed on it in the run and answers
  (`Fetched.crosscheck_chains`);
- on demand by `crosscheck_job` (`candle-pipeline crosscheck`): the stored ticker-days of some
  tickers and days against a named source, or the first other source of each ticker's chain.

A day whose ticker-days were not cross-checked gets no evaluation.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from candle_pipeline.assets.types import VALIDATED_QUOTES
from candle_pipeline.checks.quality import Targets, named, offending_metadata
from candle_pipeline.domain.adjustments import unadjust_splits
from candle_pipeline.domain.crosscheck import compare_closes, daily_ohlcv, mismatches
from candle_pipeline.domain.routing import reference_chain, source_chain
from candle_pipeline.partitions import day_key, days_between
from candle_pipeline.pools import MARKET_API_POOL
from candle_pipeline.providers.base import ProviderSetupError
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse.partition_store import load_partitions
from candle_pipeline.warehouse.tables import TABLES

SOURCE_MISMATCH = "source_mismatch"
CROSSCHECK_OP = "crosscheck"
CROSSCHECK_JOB = "crosscheck_job"
# Metadata keys of an evaluation: every mismatch in words, and why ticker-days were not compared.
MISMATCHES_KEY = "mismatches"
NOT_COMPARED_KEY = "not_compared"
NO_OTHER_SOURCE = "no other source to compare with (name one: crosscheck --against SOURCE)"
NO_REFERENCE_BAR = "no bar from the other source that day"

SOURCE_MISMATCH_CHECK = dg.AssetCheckKey(VALIDATED_QUOTES, SOURCE_MISMATCH)


def source_mismatch_spec(partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    """The `source_mismatch` check: one evaluation per day of `partitions`."""
    return dg.AssetCheckSpec(
        SOURCE_MISMATCH,
        asset=VALIDATED_QUOTES,
        partitions_def=partitions,
        description=(
            "WARN: every cross-checked ticker-day of the day (served by a fallback source, or "
            "asked for by `candle-pipeline crosscheck`) has a close within "
            "CANDLE_CROSSCHECK_TOLERANCE of a second source's; a mismatch names ticker, both "
            "closes and both sources."
        ),
    )


@dataclass(frozen=True)
class CrossCheck:
    """The comparison of some ticker-days with a second source (domain.crosscheck
    COMPARISON_COLUMNS), why the tickers no second source answered for were not compared, and
    the tolerance."""

    comparison: pd.DataFrame
    unanswered: Mapping[str, str]
    tolerance: float


def cross_check(
    market_data: MarketDataResource,
    bars: pd.DataFrame,
    chains: Mapping[str, Sequence[str]],
    tolerance: float,
    as_of: datetime | None = None,
) -> CrossCheck:
    """`bars` (raw, as traded) compared with the bars of the same ticker-days from the first
    source of each ticker's chain that answers, those that ended by `as_of` (default: now), so
    a session still in progress is compared over the same part on both sides."""
    days = bars.assign(day=pd.to_datetime(bars["trade_date"]).dt.date).groupby("ticker")["day"]
    open_days = {ticker: sorted(set(group)) for ticker, group in days}
    unanswered = {ticker: NO_OTHER_SOURCE for ticker in open_days if not chains.get(ticker)}
    try:
        fetched = market_data.fetch_from(
            open_days, {ticker: chains.get(ticker, []) for ticker in open_days}, as_of=as_of
        )
    except ProviderSetupError as error:
        reference = daily_ohlcv(bars.iloc[0:0])
        unanswered |= {ticker: str(error) for ticker in open_days if ticker not in unanswered}
    else:
        reference = daily_ohlcv(
            unadjust_splits(fetched.bars, fetched.actions, fetched.split_adjusted_as_of)
        )
        unanswered |= {ticker: failure.error for ticker, failure in fetched.failures.items()}
    return CrossCheck(
        compare_closes(daily_ohlcv(bars), reference, tolerance), unanswered, tolerance
    )


def source_mismatch_evaluations(
    check: CrossCheck, days: Sequence[date], targets: Targets
) -> Iterator[dg.AssetCheckEvaluation]:
    """One evaluation per day with cross-checked ticker-days: failed (WARN) when a close is
    further from the second source's than the tolerance."""
    comparison = check.comparison
    for day in days:
        rows = comparison[comparison["trade_date"] == day]
        if rows.empty:
            continue
        found = [mismatch.describe() for mismatch in mismatches(rows)]
        missing = rows[~rows["compared"]]
        not_compared = [
            f"{ticker} ({check.unanswered.get(ticker, NO_REFERENCE_BAR)})"
            for ticker in missing["ticker"]
        ]
        compared = int(rows["compared"].sum())
        metadata: dict[str, object] = {
            "compared_ticker_days": compared,
            "mismatched_ticker_days": len(found),
            "not_compared_ticker_days": len(not_compared),
            "tolerance": check.tolerance,
        }
        if found:
            metadata.update(offending_metadata(found))
            metadata[MISMATCHES_KEY] = dg.MetadataValue.text("\n".join(found))
        if not_compared:
            metadata[NOT_COMPARED_KEY] = dg.MetadataValue.text("\n".join(not_compared))
        summary = (
            f"{len(found)} of {compared} compared ticker-day(s) more than {check.tolerance:.2%} "
            f"from the other source: {named(found)}"
            if found
            else f"all {compared} compared ticker-day(s) within {check.tolerance:.2%}"
        )
        if not_compared:
            summary += f"; not compared: {named(not_compared)}"
        yield dg.AssetCheckEvaluation(
            asset_key=VALIDATED_QUOTES,
            check_name=SOURCE_MISMATCH,
            partition=day_key(day),
            target_materialization_data=targets.get((VALIDATED_QUOTES, day_key(day))),
            passed=not found,
            severity=dg.AssetCheckSeverity.WARN,
            description=summary,
            metadata=metadata,
        )


class CrosscheckConfig(dg.Config):
    """Which stored ticker-days to cross-check, and against which source."""

    tickers: list[str] = Field(description="Watched tickers whose stored days are compared.")
    start: str = Field(description="First day, YYYY-MM-DD.")
    end: str = Field(description="Last day, YYYY-MM-DD.")
    against: str | None = Field(
        default=None,
        description="The source to compare with (default: per ticker, the first source of its "
        "chain, CANDLE_SOURCE or its watch-list provider then CANDLE_FALLBACK_SOURCES, other "
        "than the one that served the stored days).",
    )


@dg.op(name=CROSSCHECK_OP, pool=MARKET_API_POOL, out={})
def crosscheck(
    context: dg.OpExecutionContext,
    config: CrosscheckConfig,
    *,
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
    quality: QualityResource,
) -> Iterator[dg.AssetCheckEvaluation]:
    """The stored raw bars of the tickers' days compared with a second source's, recorded as
    `source_mismatch` evaluations of those days."""
    days = days_between(date.fromisoformat(config.start), date.fromisoformat(config.end))
    providers = {entry.ticker: entry.provider for entry in warehouse.watchlist()}
    unknown = sorted(set(config.tickers) - set(providers))
    if unknown:
        raise dg.Failure(
            description=f"ticker(s) {', '.join(unknown)} are not on the watch list: add them "
            "with `candle-pipeline tickers add`"
        )
    states = warehouse.ticker_day_states(days)
    stored = states[states["ticker"].isin(config.tickers) & states["source"].notna()]
    keys = list(zip(stored["trade_date"].dt.date, stored["ticker"], strict=True))
    bars = warehouse.run(lambda conn: load_partitions(conn, TABLES["raw_quotes"], keys))
    served = stored.groupby("ticker")["source"].agg(set).to_dict()
    routes = market_data.routes({ticker: providers[ticker] for ticker in served})
    chains = {
        ticker: [config.against]
        if config.against
        else reference_chain(source_chain(routes[ticker], market_data.fallback_sources), sources)
        for ticker, sources in served.items()
    }
    context.log.info(
        f"{len(keys)} stored ticker-day(s) of {len(served)} ticker(s) to cross-check: "
        + ", ".join(
            f"{ticker} against {'/'.join(chain) or '-'}" for ticker, chain in chains.items()
        )
    )
    check = cross_check(market_data, bars, chains, quality.crosscheck_tolerance)
    yield from source_mismatch_evaluations(check, days, {})


@dg.job(
    name=CROSSCHECK_JOB,
    description="The stored daily closes of some tickers and days against a second source: one "
    "source_mismatch evaluation of validated_quotes per day (`candle-pipeline crosscheck`).",
)
def crosscheck_job() -> None:
    crosscheck()
