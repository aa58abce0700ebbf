"""Asset backfills of day partitions through the backfill daemon's own iterations.

A backfill of some days of `market_timings` and the three market-data assets, with run config
naming some tickers, becomes runs of at most `CANDLE_BACKFILL_DAYS_PER_RUN` consecutive days (the
backfill policy), each run writing exactly the named tickers' rows of its days: every other day
and every other ticker stays byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg
import pandas as pd
import pytest
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import BulkActionStatus

from candle_pipeline import partitions, runs
from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import ENV_DATABASE_URL, Settings, get_settings
from candle_pipeline_tests.backfill_driver import (
    BackfillDriver,
    backfill_instance,
    shipped_storage,
)
from candle_pipeline_tests.conftest import create_database, definitions_for, table, watch
from candle_pipeline_tests.quality.records import latest_evaluations, partition_metadata

TICKERS = ["AIG", "IBM", "SPY"]
NAMED = ["IBM", "SPY"]
DAYS = partitions.days_between(date(2013, 10, 4), date(2013, 10, 11))
# Friday to Wednesday (six days: more than a run holds), then Friday; Thursday the 10th is left.
SELECTED = [*partitions.days_between(date(2013, 10, 4), date(2013, 10, 9)), date(2013, 10, 11)]
LEFT_OUT = date(2013, 10, 10)
TABLES = ("raw_quotes", "validated_quotes", "candles", "ticker_days", "quality_reports")
MAX_ITERATIONS = 20


@dataclass(frozen=True)
class Backfilled:
    url: str
    instance: dg.DagsterInstance
    before: dict[str, pd.DataFrame]
    runs: list[dg.DagsterRun]

    @property
    def run_ids(self) -> set[str]:
        return {run.run_id for run in self.runs}


@pytest.fixture(scope="module")
def backfilled(pg_server: LocalPostgres) -> Iterator[Backfilled]:
    """Every ticker-day of TICKERS x DAYS materialised; then a backfill of the SELECTED days of
    every asset that refetches NAMED, driven by the backfill daemon's iterations."""
    url = create_database(pg_server, "warehouse")
    watch(url, TICKERS, DAYS[0])
    storage = shipped_storage(create_database(pg_server, "dagster"))
    with pytest.MonkeyPatch.context() as monkeypatch, backfill_instance(storage) as instance:
        # The code location's resources read the warehouse URL from the environment.
        monkeypatch.setenv(ENV_DATABASE_URL, url)
        outcomes = runs.materialize(definitions_for(url), instance, DAYS[0], DAYS[-1])
        assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes]
        before = {name: table(url, name) for name in TABLES}
        with BackfillDriver.loaded(instance) as driver:
            backfill_id = driver.submit(
                {name: [day.isoformat() for day in SELECTED] for name in runs.ALL_ASSETS},
                run_config=runs.run_config(NAMED, refetch=True),
            )
            outcome = driver.run(backfill_id, MAX_ITERATIONS)
        assert outcome.backfill.status == BulkActionStatus.COMPLETED_SUCCESS
        yield Backfilled(url, instance, before, list(outcome.runs))


def run_days(run: dg.DagsterRun) -> list[date]:
    first = date.fromisoformat(run.tags[runs.RANGE_START_TAG])
    last = date.fromisoformat(run.tags[runs.RANGE_END_TAG])
    return partitions.days_between(first, last)


def test_runs_hold_at_most_the_days_per_run_and_cover_the_selected_days_exactly(
    backfilled: Backfilled,
) -> None:
    per_run = partitions.days_per_run(get_settings())
    assert per_run == 366, "a csv folder counts as daily bars"
    assert {run.status for run in backfilled.runs} == {dg.DagsterRunStatus.SUCCESS}
    spans = sorted(run_days(run) for run in backfilled.runs)
    assert [(span[0], span[-1]) for span in spans] == [
        (date(2013, 10, 4), date(2013, 10, 9)),
        (date(2013, 10, 11), date(2013, 10, 11)),
    ], "consecutive selected days share a run; the day left out splits them"
    assert all(len(span) <= per_run for span in spans)
    for run in backfilled.runs:
        assert {key.path[-1] for key in run.asset_selection or ()} == set(runs.ALL_ASSETS)
        assert run.run_config["ops"][runs.MARKET_DATA_OP]["config"] == {
            "tickers": NAMED,
            "refetch": True,
        }
    for name in runs.ALL_ASSETS:
        records = backfilled.instance.fetch_materializations(dg.AssetKey(name), limit=1000).records
        by_backfill = sorted(r.partition_key for r in records if r.run_id in backfilled.run_ids)
        assert by_backfill == [day.isoformat() for day in SELECTED], name


def test_only_the_named_tickers_of_the_selected_days_are_rewritten(backfilled: Backfilled) -> None:
    for name, old in backfilled.before.items():
        after = table(backfilled.url, name)
        if name == "quality_reports":
            # One report per scored ticker-day and run: the backfill adds its own, nothing else.
            pd.testing.assert_frame_equal(
                after[~after["run_id"].isin(backfilled.run_ids)].reset_index(drop=True), old
            )
            added = after[after["run_id"].isin(backfilled.run_ids)]
            scored = old[old["ticker"].isin(NAMED) & old["trade_date"].isin(SELECTED)]
            assert sorted(zip(added["ticker"], added["trade_date"], strict=True)) == sorted(
                zip(scored["ticker"], scored["trade_date"], strict=True)
            )
            assert len(added) > 0
            continue
        rewritten = after["ticker"].isin(NAMED) & after["trade_date"].isin(SELECTED)
        was = old["ticker"].isin(NAMED) & old["trade_date"].isin(SELECTED)
        pd.testing.assert_frame_equal(
            after[~rewritten].reset_index(drop=True), old[~was].reset_index(drop=True), obj=name
        )
        assert (~was).sum() > 0, name
        assert rewritten.sum() == was.sum() > 0, name
    raw = table(backfilled.url, "raw_quotes")
    fresh = raw["ticker"].isin(NAMED) & raw["trade_date"].isin(SELECTED)
    assert raw.loc[fresh, "fetched_at"].min() > backfilled.before["raw_quotes"]["fetched_at"].max()


def test_the_ticker_days_say_which_run_wrote_them(backfilled: Backfilled) -> None:
    states = table(backfilled.url, "ticker_days").set_index(["ticker", "trade_date"])
    assert len(states) == len(TICKERS) * len(DAYS)
    for (ticker, day), state in states.iterrows():
        # A closed day is settled for good: refetching asks for sessions only.
        assert (state["status"] == CLOSED) == (day.weekday() >= 5), (ticker, day)
        touched = ticker in NAMED and day in SELECTED and state["status"] == COMPLETE
        assert (state["run_id"] in backfilled.run_ids) == touched, (ticker, day)
        assert state["attempts"] == (2 if touched else int(state["status"] == COMPLETE))


def test_each_day_reports_all_its_tickers_after_a_run_for_some(backfilled: Backfilled) -> None:
    """A run narrowed to some tickers still states, and checks, the whole day."""
    monday = partition_metadata(backfilled.instance, dg.AssetKey("candles"), "2013-10-07")
    assert monday["tickers_expected"].value == len(TICKERS)
    assert monday["tickers_complete"].value == len(TICKERS)
    coverage = latest_evaluations(backfilled.instance, "coverage", dg.AssetKey("raw_quotes"))
    assert coverage["2013-10-07"].metadata["open_ticker_days"].value == len(TICKERS)
    assert coverage["2013-10-07"].passed


@pytest.mark.parametrize("per_run", [1, 2, 5, 366])
def test_the_setting_sets_the_runs_a_ragged_selection_of_days_becomes(
    instance: dg.DagsterInstance, per_run: int
) -> None:
    """What the backfill daemon would launch for scattered days of a year under
    CANDLE_BACKFILL_DAYS_PER_RUN: every selected day in exactly one run of consecutive days,
    at most `per_run` of them, nothing else."""
    settings = Settings.from_env({"CANDLE_BACKFILL_DAYS_PER_RUN": str(per_run)})
    policy = partitions.backfill_policy(settings)
    assert policy.max_partitions_per_run == per_run

    year = partitions.days_between(date(2024, 1, 1), date(2024, 12, 31))
    selected = [day.isoformat() for n, day in enumerate(year) if (n * 7) % 11 not in (0, 3)]

    @dg.asset(partitions_def=partitions.day_partitions(settings), backfill_policy=policy)
    def days() -> None: ...

    graph = dg.Definitions(assets=[days]).resolve_asset_graph()
    requests = build_run_requests_with_backfill_policies(
        [AssetKeyPartitionKey(days.key, key) for key in selected], graph, instance
    )
    covered = []
    for request in requests:
        first = date.fromisoformat(request.tags[runs.RANGE_START_TAG])
        last = date.fromisoformat(request.tags[runs.RANGE_END_TAG])
        assert (last - first).days < per_run
        covered.extend(day.isoformat() for day in partitions.days_between(first, last))
    assert sorted(covered) == selected
    ranges = runs.day_ranges([date.fromisoformat(key) for key in selected], per_run)
    assert len(requests) == len(ranges), "the command line and sensors split days the same way"
