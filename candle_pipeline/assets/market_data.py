"""`market_data`: one step that completes day partitions of `raw_quotes`, `validated_quotes` and
`candles` for every ticker the watch list counts on those days.

Materialising a day completes it: the step asks the provider only for the ticker-days that are
not complete (`market.ticker_days`), validates, scores and gates them and builds the candles of
those that pass, all in memory; everything it writes (the three tables, corporate actions,
quality reports and the ticker-days' states) commits in one transaction. A ticker the provider
fails on is recorded `failed` or `retry_later` and the others are stored; a ticker-day scoring
below the threshold is recorded `blocked` and gets no candles.

The three assets can be selected on their own from the top of the chain down: all three fetch;
`validated_quotes` and `candles` validate the stored raw quotes again (after a change of the
rules); `candles` alone rebuilds candles from the stored validated quotes.
"""

import dataclasses
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import psycopg
from pydantic import Field

from candle_pipeline.assets.market_timings import GROUP, IO_MANAGER, MARKET_TIMINGS
from candle_pipeline.assets.types import (
    CANDLES,
    CANDLES_TYPE,
    RAW_QUOTES,
    RAW_QUOTES_TYPE,
    VALIDATED_QUOTES,
    VALIDATED_QUOTES_TYPE,
)
from candle_pipeline.checks.crosscheck import (
    SOURCE_MISMATCH_CHECK,
    cross_check,
    source_mismatch_evaluations,
    source_mismatch_spec,
)
from candle_pipeline.checks.quality import (
    SCORE_KEY,
    Targets,
    check_specs,
    checked_materializations,
    day_evaluations,
    run_warnings,
)
from candle_pipeline.domain import sessions
from candle_pipeline.domain.adjustments import known_factors, last_closes, unadjust_splits
from candle_pipeline.domain.bars import DROP_REASONS, RAW_COLUMNS
from candle_pipeline.domain.candles import CANDLE_INTERVALS
from candle_pipeline.domain.candles import DAILY as DAILY_INTERVAL
from candle_pipeline.domain.intraday import closed_candles, elapsed_timings
from candle_pipeline.domain.periods import (
    ONLY_NOT_MATERIALISED,
    PERIOD_COMPLETE,
    PERIOD_INCOMPLETE,
    empty_period_candles,
    period_candles,
    period_days,
    periods_touching,
)
from candle_pipeline.domain.processing import Processed, process, rebuild
from candle_pipeline.domain.quality import Validation
from candle_pipeline.domain.ticker_days import (
    FETCH,
    MARK_CLOSED,
    NOT_FETCHED,
    SETTLED,
    STATUSES,
    WAITING,
    Failure,
    Outcome,
    WorkPlan,
    day_summary,
    expected_ticker_days,
    final_states,
    plan_work,
    settle,
)
from candle_pipeline.partitions import day_key, days_of
from candle_pipeline.pools import MARKET_API_POOL
from candle_pipeline.providers.base import ProviderSetupError
from candle_pipeline.resources.market_data import Fetched, MarketDataResource
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse import quality_reports
from candle_pipeline.warehouse.corporate_actions import load_actions, load_factors, store_actions
from candle_pipeline.warehouse.partition_store import load_partitions
from candle_pipeline.warehouse.period_candles import daily_candles, write_periods
from candle_pipeline.warehouse.tables import TABLES
from candle_pipeline.warehouse.ticker_days import assert_unchanged, load_states, write_states
from candle_pipeline.warehouse.watchlist import WatchedTicker, watch_frame

CHAIN = (RAW_QUOTES, VALIDATED_QUOTES, CANDLES)
KINDS = {"pandas", "postgres"}
# Periods without a candle named in a run's log line and metadata (the table holds them all).
PERIODS_SHOWN = 10
STATE_KEY_STATUS = ("ticker", "trade_date", "status")


class MarketDataConfig(dg.Config):
    """Which ticker-days of the run's days to work on (the launchpad shows both)."""

    tickers: list[str] = Field(
        default_factory=list,
        description="Only these watched tickers (default: every ticker the watch list counts).",
    )
    refetch: bool = Field(
        default=False,
        description="Ask the provider again for complete ticker-days too, and replace them.",
    )
    as_of: str | None = Field(
        default=None,
        description=(
            "The moment the run stands for (ISO 8601 with an offset; default: now). A session "
            "not closed by then is stored provisional (`in_progress`): its bars and candle "
            "buckets that ended by then only. The intraday schedule sets its tick time here."
        ),
    )


def _out(dagster_type: dg.DagsterType, description: str) -> dg.AssetOut:
    return dg.AssetOut(
        dagster_type=dagster_type,
        is_required=False,
        io_manager_key=IO_MANAGER,
        group_name=GROUP,
        kinds=KINDS,
        description=description,
    )


def market_data(
    context: dg.AssetExecutionContext,
    config: MarketDataConfig,
    market_timings: pd.DataFrame,
    *,
    market_data: MarketDataResource,
    quality: QualityResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output | dg.AssetCheckEvaluation | dg.AssetCheckResult]:
    """Raw quotes -> validated quotes -> candles of the run's days, for the ticker-days that need
    it, in one step and one transaction."""
    start = _first_selected(context.selected_asset_keys)
    days = days_of(context.partition_time_window)
    now = _as_of(config)
    entries = warehouse.watchlist()
    watched = watch_frame(entries)
    named = _named_tickers(config, [e.ticker for e in entries], days)
    expected = expected_ticker_days(watched, days, named)
    states = warehouse.ticker_day_states(days)
    # Processing stored rows again covers every open ticker-day, complete or not.
    refetch = config.refetch or start != RAW_QUOTES
    plan = plan_work(expected, market_timings, states, now, refetch=refetch)
    exchanges = warehouse.exchanges()
    rules = quality.rules()
    # A session still open is measured against its elapsed part only.
    timings = elapsed_timings(market_timings, now)
    fetched = None
    failures: dict[str, Failure] = {}
    if start == CANDLES:
        validated = _stored(warehouse, "validated_quotes", plan)
        reference = pd.Series(float("nan"), index=validated.index)
        processed = rebuild(
            Validation(validated, reference), timings, exchanges, rules, CANDLE_INTERVALS
        )
        raw = validated.iloc[0:0]
    else:
        if start == RAW_QUOTES:
            fetched, raw = _fetch(market_data, warehouse, plan, entries, now)
            failures = fetched.failures
        else:
            raw = _stored(warehouse, "raw_quotes", plan).loc[:, list(RAW_COLUMNS)]
        processed = process(
            raw,
            timings,
            exchanges,
            rules,
            CANDLE_INTERVALS,
            factors=_factors(warehouse, raw, fetched),
            previous_closes=_previous_closes(warehouse, raw),
        )
    new_states = settle(
        plan,
        Outcome(
            processed.stored,
            failures,
            attempted=fetched is not None,
            source=market_data.source,
            failed_retries=market_data.failed_retries(),
            fallbacks=fetched.fallbacks if fetched is not None else {},
        ),
        context.run.run_id,
        now,
    )
    # A day's metadata and checks are about all its ticker-days, named in the run config or not.
    whole_days = (
        plan
        if named is None
        else plan_work(expected_ticker_days(watched, days), market_timings, states, now)
    )
    final = final_states(whole_days, new_states)
    outputs = {
        RAW_QUOTES: raw,
        VALIDATED_QUOTES: processed.validation.quotes,
        CANDLES: closed_candles(processed.candles, plan.in_session(), now),
    }
    periods = _judge_periods(
        warehouse,
        expected=expected,
        days=days,
        new_states=new_states,
        candles=outputs[CANDLES],
        now=now,
    )
    _add_day_metadata(context, days, final, outputs)
    _log_plan(context, plan, fetched, periods)

    with warehouse.unit_of_work():
        if start != RAW_QUOTES:
            # Built from stored rows: stored only if no other run rewrote them since.
            read_keys = plan.keys(FETCH)
            warehouse.write(lambda conn: assert_unchanged(conn, states, read_keys))
        for key in CHAIN[CHAIN.index(start) :]:
            yield dg.Output(
                outputs[key],
                output_name=key.path[-1],
                metadata=_output_metadata(key, market_data, fetched, periods),
            )
        _write_side_tables(
            warehouse,
            run_id=context.run.run_id,
            now=now,
            quality=quality,
            processed=processed,
            fetched=fetched,
            periods=periods,
        )
        warehouse.write(lambda conn: write_states(conn, new_states))
    if fetched is not None:
        warehouse.record_provider_exchanges(
            {
                ticker: result.exchange_name
                for ticker, result in fetched.results.items()
                if result.exchange_name
            }
        )
    selected = set(context.selected_asset_check_keys)
    targets = checked_materializations(context.instance, context.run.run_id, days, selected)
    yield from itertools.chain(
        day_evaluations(final, days, rules.threshold, selected, targets),
        _cross_check_fallbacks(
            market_data, quality, fetched, raw, now, days=days, targets=targets, selected=selected
        ),
    )
    yield from run_warnings(
        final,
        validation=processed.validation,
        assessment=processed.assessment,
        rules=rules,
        selected=selected,
    )


def _as_of(config: MarketDataConfig) -> datetime:
    """The run's moment: `as_of` of the run config, else now."""
    if config.as_of is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(config.as_of)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise dg.Failure(
            description=(
                f"as_of={config.as_of!r} is not an ISO 8601 time with an offset "
                "(e.g. 2025-02-03T11:00:00-05:00)"
            )
        )
    return moment.astimezone(UTC)


def _fetch(
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
    plan: WorkPlan,
    entries: Sequence[WatchedTicker],
    now: datetime,
) -> tuple[Fetched, pd.DataFrame]:
    """What each ticker's provider returns for the plan's ticker-days as of `now`, and the raw
    bars to process: the prices that traded (a provider's bars divided by later splits are
    multiplied back once, here). A provisional ticker-day a refresh resumed is processed and
    stored whole again: its stored bars join the new ones, and its stored corporate actions stay
    with what was fetched (the new window may not show an event of the morning). A provider
    that cannot be used as configured fails the run with its one line (its secrets masked)."""
    resume_after = plan.resume_after()
    try:
        fetched = market_data.fetch_all(
            plan.to_fetch(),
            {entry.ticker: entry.provider for entry in entries},
            as_of=now,
            resume_after=resume_after,
        )
    except ProviderSetupError as error:
        raise dg.Failure(description=str(error)) from None
    new = unadjust_splits(fetched.bars, fetched.actions, fetched.split_adjusted_as_of)
    if not resume_after:
        return fetched, new
    keys = plan.resumed()

    def stored(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (
            load_partitions(conn, TABLES["raw_quotes"], keys),
            load_partitions(conn, TABLES["corporate_actions"], keys),
        )

    bars, actions = warehouse.run(stored)
    combined = pd.concat([bars.loc[:, list(new.columns)], new], ignore_index=True)
    kept = dataclasses.replace(fetched, actions=_merged_actions(actions, fetched.actions))
    return kept, combined.sort_values(["ticker", "ts"], ignore_index=True)


def _first_selected(selected: Sequence[dg.AssetKey] | set[dg.AssetKey]) -> dg.AssetKey:
    """Where the chain starts: the selection must hold everything below its first asset, since
    a ticker-day's tables are written together."""
    first = next(key for key in CHAIN if key in selected)
    needed = CHAIN[CHAIN.index(first) :]
    missing = [key.to_user_string() for key in needed if key not in selected]
    if missing:
        raise dg.Failure(
            description=(
                f"{first.to_user_string()} is materialised with what is built from it in the "
                f"same step: select {', '.join(missing)} too"
            )
        )
    return first


def _named_tickers(
    config: MarketDataConfig, watched: Sequence[str], days: Sequence[date]
) -> list[str] | None:
    """The `tickers` of the run config, each checked against the watch list (None: all)."""
    if not config.tickers:
        return None
    unknown = sorted(set(config.tickers) - set(watched))
    if unknown:
        raise dg.Failure(
            description=(
                f"ticker(s) {', '.join(unknown)} are not on the watch list: add them with "
                f"`candle-pipeline tickers add` (days {days[0]}..{days[-1]})"
            )
        )
    return list(config.tickers)


def _cross_check_fallbacks(
    market_data: MarketDataResource,
    quality: QualityResource,
    fetched: Fetched | None,
    raw: pd.DataFrame,
    now: datetime,
    *,
    days: Sequence[date],
    targets: Targets,
    selected: set[dg.AssetCheckKey],
) -> Iterator[dg.AssetCheckEvaluation]:
    """The source_mismatch evaluations of the days with ticker-days a fallback served: their
    bars as stored against the first source of each ticker's chain that neither served nor
    failed on it in this run, and answers."""
    if SOURCE_MISMATCH_CHECK not in selected or fetched is None or not fetched.fallbacks:
        return iter(())
    served = raw[raw["ticker"].isin(list(fetched.fallbacks))]
    check = cross_check(
        market_data, served, fetched.crosscheck_chains(), quality.crosscheck_tolerance, now
    )
    return source_mismatch_evaluations(check, days, targets)


def _stored(warehouse: WarehouseResource, table: str, plan: WorkPlan) -> pd.DataFrame:
    """The stored rows of `table` for the open ticker-days of the plan."""
    keys = plan.keys(FETCH)
    return warehouse.run(lambda conn: load_partitions(conn, TABLES[table], keys))


def _previous_closes(warehouse: WarehouseResource, raw: pd.DataFrame) -> pd.DataFrame:
    """The last valid close stored before each ticker's first bar of the run."""
    firsts = raw.groupby("ticker")["trade_date"].min().dt.date.to_dict()
    return warehouse.run(lambda conn: quality_reports.previous_closes(conn, firsts))


def _factors(
    warehouse: WarehouseResource, raw: pd.DataFrame, fetched: Fetched | None
) -> pd.DataFrame:
    """The adjustment factors the spike rule measures moves across splits and dividends with:
    the stored factor table of the run's tickers, renewed by the actions just fetched."""
    tickers = sorted(set(raw["ticker"]))

    def stored(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
        return load_factors(conn, tickers), load_actions(conn, tickers)

    factors, actions = warehouse.run(stored)
    fresh = fetched.actions if fetched is not None else actions.iloc[0:0]
    return known_factors(factors, actions, fresh)


def _merged_actions(stored: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The stored corporate actions that `fresh` does not replace, and `fresh`."""
    replaced = pd.MultiIndex.from_frame(stored[["ex_date", "ticker"]]).isin(
        pd.MultiIndex.from_frame(fresh[["ex_date", "ticker"]])
    )
    return pd.concat([stored.loc[~replaced, list(fresh.columns)], fresh], ignore_index=True)


def _write_side_tables(
    warehouse: WarehouseResource,
    *,
    run_id: str,
    now: datetime,
    quality: QualityResource,
    processed: Processed,
    fetched: Fetched | None,
    periods: pd.DataFrame,
) -> None:
    """Corporate actions of the fetched tickers (and their adjustment factors), the run's
    quality reports and the periods it judged, in the step's unit of work."""
    if fetched is not None and not processed.stored.empty:
        fetched_days = processed.stored.loc[:, ["trade_date", "ticker"]]
        closes = last_closes(processed.validation.quotes)
        warehouse.write(
            lambda conn: store_actions(conn, fetched.actions, fetched_days, closes, now)
        )
    if len(processed.assessment.reports):
        assessment, threshold = processed.assessment, quality.quality_threshold
        warehouse.write(
            lambda conn: quality_reports.write_reports(conn, assessment, run_id, now, threshold)
        )
    if not periods.empty:
        warehouse.write(lambda conn: write_periods(conn, periods, now, run_id))


def _add_day_metadata(
    context: dg.AssetExecutionContext,
    days: Sequence[date],
    final: pd.DataFrame,
    outputs: dict[dg.AssetKey, pd.DataFrame],
) -> None:
    """Each day's materialisation: its ticker-days by status, its lowest and mean quality score
    (numbers, so the asset's Plots tab draws them over time), the rows written for it and, while
    some of its ticker-days are provisional, the start of their latest stored bar."""
    summary = day_summary(final)
    by_day: dict[date, dict[str, object]] = {day: {"tickers_expected": 0} for day in days}
    for stamp, row in summary.to_dict("index").items():
        entry: dict[str, object] = {
            "tickers_expected": int(row["expected"]),
            **{f"tickers_{status}": int(row[status]) for status in (*STATUSES, NOT_FETCHED)},
            "tickers_fallback": int(row["fallback"]),
        }
        if pd.notna(row["in_progress_last_bar"]):
            entry["in_progress_last_bar"] = row["in_progress_last_bar"].isoformat()
        if pd.notna(row["quality_score_min"]):
            entry[SCORE_KEY] = dg.MetadataValue.float(round(row["quality_score_min"], 4))
            entry["quality_score_mean"] = dg.MetadataValue.float(
                round(row["quality_score_mean"], 4)
            )
        by_day[stamp.date()] = entry
    for key in context.selected_asset_keys:
        frame = outputs[key]
        written = frame.groupby(frame["trade_date"].dt.date).size().to_dict()
        for day in days:
            context.add_asset_metadata(
                {**by_day[day], "rows_written": int(written.get(day, 0))},
                asset_key=key,
                partition_key=day_key(day),
            )


def _judge_periods(
    warehouse: WarehouseResource,
    *,
    expected: pd.DataFrame,
    days: Sequence[date],
    new_states: pd.DataFrame,
    candles: pd.DataFrame,
    now: datetime,
) -> pd.DataFrame:
    """The weekly and monthly candles (or why none) of the run's tickers in every period that
    holds one of the run's days: the periods' other days come from the warehouse (their stored
    ticker-day states and daily candles), the run's own from what it just built."""
    if expected.empty:
        return empty_period_candles()
    periods = periods_touching(days)
    all_days = period_days(periods)
    tickers = expected.loc[:, ["ticker", "exchange"]].drop_duplicates("ticker", keep="last")
    mics = sorted(set(tickers["exchange"]))
    overrides = warehouse.calendar_overrides_frame(mics, all_days[0], all_days[-1])
    timings = sessions.market_timings(mics, all_days[0], all_days[-1], overrides)
    open_days = timings.loc[timings["is_open"], ["mic", "session_date", "close_utc"]]
    ticker_sessions = tickers.merge(open_days, left_on="exchange", right_on="mic").rename(
        columns={"session_date": "trade_date"}
    )

    def stored(conn: psycopg.Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
        return load_states(conn, all_days), daily_candles(conn, all_days)

    stored_states, stored_daily = warehouse.run(stored)
    states = pd.concat(
        [stored_states.loc[:, list(STATE_KEY_STATUS)], new_states.loc[:, list(STATE_KEY_STATUS)]],
        ignore_index=True,
    ).drop_duplicates(["ticker", "trade_date"], keep="last")
    built = candles[candles["interval"] == DAILY_INTERVAL]
    rebuilt = pd.MultiIndex.from_frame(stored_daily[["ticker", "trade_date"]]).isin(
        pd.MultiIndex.from_frame(built[["ticker", "trade_date"]])
    )
    daily = pd.concat(
        [stored_daily[~rebuilt], built.loc[:, list(stored_daily.columns)]], ignore_index=True
    )
    return period_candles(periods, ticker_sessions, states, daily, now)


def _period_lines(periods: pd.DataFrame) -> list[str]:
    return [
        f"{row.ticker} {row.interval} {row.period_start:%Y-%m-%d}: {row.reason}"
        for row in periods.itertuples()
    ]


def _output_metadata(
    key: dg.AssetKey,
    market_data: MarketDataResource,
    fetched: Fetched | None,
    periods: pd.DataFrame,
) -> dict[str, object]:
    """The run's provider cost on `raw_quotes`; the periods it judged on `candles`."""
    if key == RAW_QUOTES:
        return _run_metadata(market_data, fetched)
    if key != CANDLES:
        return {}
    incomplete = periods[periods["status"] == PERIOD_INCOMPLETE]
    metadata: dict[str, object] = {
        "run_period_candles": int((periods["status"] == PERIOD_COMPLETE).sum()),
        "run_periods_without_candle": len(incomplete),
    }
    if not incomplete.empty:
        metadata["periods_without_candle"] = dg.MetadataValue.md(
            "\n".join(f"- {line}" for line in _period_lines(incomplete.head(PERIODS_SHOWN)))
        )
    return metadata


def _run_metadata(market_data: MarketDataResource, fetched: Fetched | None) -> dict[str, object]:
    """What the run's provider requests cost (the same on each day of the run)."""
    if fetched is None:
        return {}
    dropped = {reason: 0 for reason in DROP_REASONS}
    for result in fetched.results.values():
        for reason, count in result.dropped.items():
            dropped[reason] = dropped.get(reason, 0) + count
    cost = fetched.cost
    return {
        "provider": market_data.source,
        "run_provider_requests": cost.requests,
        **{
            f"run_requests_{name}": count
            for name, count in sorted(fetched.requests_by_source.items())
        },
        "run_fallbacks": len(fetched.fallbacks),
        "run_provider_retries": cost.retries,
        "run_throttled_seconds": round(cost.throttled_seconds, 3),
        "run_backoff_seconds": round(cost.backoff_seconds, 3),
        **{f"run_rows_dropped_{reason}": count for reason, count in dropped.items()},
    }


def _log_plan(
    context: dg.AssetExecutionContext,
    plan: WorkPlan,
    fetched: Fetched | None,
    periods: pd.DataFrame,
) -> None:
    """What the run works on, the tickers that failed and the periods left without a candle."""
    fetching = plan.count(FETCH)
    context.log.info(
        f"{len(plan.ticker_days)} ticker-day(s): {fetching} to process, "
        f"{plan.count(SETTLED)} complete already, {plan.count(MARK_CLOSED)} closed, "
        f"{plan.count(WAITING)} waiting for a retry"
    )
    if fetched is not None and fetched.failures:
        shown = "; ".join(
            f"{ticker}: {failure.status}: {failure.error}"
            for ticker, failure in list(fetched.failures.items())[:5]
        )
        context.log.warning(f"{len(fetched.failures)} ticker(s) failed: {shown}")
    incomplete = periods[periods["status"] == PERIOD_INCOMPLETE]
    if not incomplete.empty:
        # Days not materialised yet are the normal state of a backfill in progress; a blocked,
        # failed or empty day in a period is worth a warning.
        stuck = incomplete[~incomplete["reason"].str.fullmatch(ONLY_NOT_MATERIALISED)]
        shown = " | ".join(_period_lines((stuck if len(stuck) else incomplete).head(PERIODS_SHOWN)))
        log = context.log.warning if len(stuck) else context.log.info
        log(f"{len(incomplete)} period(s) without a candle: {shown}")


def build_market_data(
    partitions: dg.PartitionsDefinition, policy: dg.BackfillPolicy
) -> dg.AssetsDefinition:
    """The `market_data` multi-asset on the day partitions and backfill policy of the settings."""
    return dg.multi_asset(
        name="market_data",
        outs={
            "raw_quotes": _out(
                RAW_QUOTES_TYPE,
                "Bars exactly as the provider returned them (pre/post-market included), with "
                "`source` and `fetched_at`.",
            ),
            "validated_quotes": _out(
                VALIDATED_QUOTES_TYPE,
                "Every raw bar tagged regular/pre/post/outside, one flag per quality rule and "
                "`is_valid`.",
            ),
            "candles": _out(
                CANDLES_TYPE,
                "5m, 15m, 30m, 1h, 4h and 1d OHLCV of the valid regular-session bars of "
                "ticker-days that passed the quality gate.",
            ),
        },
        ins={"market_timings": dg.AssetIn(key=MARKET_TIMINGS)},
        internal_asset_deps={
            "raw_quotes": {MARKET_TIMINGS},
            "validated_quotes": {RAW_QUOTES, MARKET_TIMINGS},
            "candles": {VALIDATED_QUOTES, MARKET_TIMINGS},
        },
        check_specs=[*check_specs(partitions), source_mismatch_spec(partitions)],
        partitions_def=partitions,
        backfill_policy=policy,
        can_subset=True,
        pool=MARKET_API_POOL,
    )(market_data)
