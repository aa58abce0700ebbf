"""Asset backfills through the backfill daemon's own logic: non-rectangular selections.

Dagster splits a backfill of some tickers on some days into partition ranges one key wide in one
dimension and launches a run per range (single-run policy) or per chunk (multi-run policy). The
IO manager must replace exactly those partitions and never touch the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from candle_pipeline import partitions, runs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import TICKERS_PARTITION_NAME, TickerDay, parse_ticker_day
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline.settings import ENV_DATABASE_URL, Settings
from candle_pipeline_tests.backfill_driver import (
    BackfillDriver,
    backfill_instance,
    shipped_storage,
)
from candle_pipeline_tests.conftest import create_database, definitions_for

TICKERS = ["SPY", "IBM", "AIG"]
DAYS = [date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9)]
# Some tickers on some days: no rectangle of dates x tickers covers it exactly.
SELECTED = ["2013-10-07|SPY", "2013-10-08|SPY", "2013-10-08|IBM", "2013-10-09|AIG"]
MAX_ITERATIONS = 20


@pytest.fixture
def loaded(pg_server: LocalPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackfillDriver]:
    """A warehouse holding every ticker-day of TICKERS x DAYS, and the backfill daemon's loop."""
    warehouse_url = create_database(pg_server, "warehouse")
    monkeypatch.setenv(ENV_DATABASE_URL, warehouse_url)
    storage = shipped_storage(create_database(pg_server, "dagster"))
    with backfill_instance(storage) as instance:
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, TICKERS)
        outcomes = runs.materialize(
            definitions_for(warehouse_url), instance, TICKERS, DAYS[0], DAYS[-1]
        )
        assert all(outcome.success for outcome in outcomes)
        with BackfillDriver.loaded(instance) as driver:
            yield driver


def table(name: str) -> pd.DataFrame:
    with engine_for(os.environ[ENV_DATABASE_URL]).connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM market.{name}"), conn)
    frame["key"] = frame["trade_date"].astype(str) + "|" + frame["ticker"]
    return frame.sort_values(["ticker", "interval", "ts"]).reset_index(drop=True)


def test_a_non_rectangular_backfill_replaces_exactly_the_selected_partitions(
    loaded: BackfillDriver,
) -> None:
    before = {name: table(name) for name in runs.PER_TICKER_ASSETS}
    backfill_id = loaded.submit({name: SELECTED for name in runs.PER_TICKER_ASSETS})
    outcome = loaded.run(backfill_id, MAX_ITERATIONS)

    assert outcome.backfill.status == BulkActionStatus.COMPLETED_SUCCESS
    assert outcome.runs, "the backfill launched runs"
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in outcome.runs)
    covered = []
    for run in outcome.runs:
        start = parse_ticker_day(run.tags[ASSET_PARTITION_RANGE_START_TAG])
        end = parse_ticker_day(run.tags[ASSET_PARTITION_RANGE_END_TAG])
        assert start.trade_date == end.trade_date or start.ticker == end.ticker, (
            "Dagster plans ranges one key wide in one dimension"
        )
        covered.extend(
            dg.MultiPartitionKey({"date": day.isoformat(), "ticker": ticker})
            for day in DAYS
            for ticker in TICKERS
            if start.trade_date <= day <= end.trade_date
            and TICKERS.index(start.ticker) <= TICKERS.index(ticker) <= TICKERS.index(end.ticker)
        )
    assert sorted(map(str, covered)) == sorted(SELECTED), "runs cover the selection exactly"

    for name in runs.PER_TICKER_ASSETS:
        after = table(name)
        old = before[name]
        untouched_after = after[~after["key"].isin(SELECTED)].reset_index(drop=True)
        untouched_before = old[~old["key"].isin(SELECTED)].reset_index(drop=True)
        assert len(untouched_before) > 0
        pd.testing.assert_frame_equal(untouched_after, untouched_before, check_like=True)
        rewritten = after[after["key"].isin(SELECTED)]
        assert rewritten.groupby("key").size().to_dict() == (
            old[old["key"].isin(SELECTED)].groupby("key").size().to_dict()
        )
    raw_after = table("raw_quotes")
    newest_before = before["raw_quotes"]["fetched_at"].max()
    selected_raw = raw_after[raw_after["key"].isin(SELECTED)]
    assert (selected_raw["fetched_at"] > newest_before).all(), "selected rows were rewritten"

    instance = loaded.instance
    run_ids = {run.run_id for run in outcome.runs}
    for name in runs.PER_TICKER_ASSETS:
        records = instance.fetch_materializations(dg.AssetKey(name), limit=1000).records
        by_backfill = sorted(r.partition_key for r in records if r.run_id in run_ids)
        assert by_backfill == sorted(SELECTED), name


@pytest.mark.parametrize("chunk", [None, 1, 2, 5])
def test_runs_planned_for_any_policy_cover_a_ragged_selection_exactly(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, chunk: int | None
) -> None:
    """What the backfill daemon would launch for a ragged selection of 40 tickers x 7 days,
    under the single-run policy and chunks of 1, 2 and 5 ticker-days: every selected
    partition in exactly one run, nothing else."""
    env = {} if chunk is None else {"CANDLE_BACKFILL_PARTITIONS_PER_RUN": str(chunk)}
    monkeypatch.setattr(partitions, "_settings", Settings.from_env(env))
    policy = partitions.ticker_day_backfill_policy()
    assert policy.max_partitions_per_run == chunk

    tickers = [f"T{index:02d}" for index in range(40)]
    instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, tickers)
    days = [date(2024, 3, day) for day in range(4, 11)]
    selected = [
        TickerDay(day, ticker).key
        for position, ticker in enumerate(tickers)
        for offset, day in enumerate(days)
        if (position * 7 + offset * 3) % 5 != 0
    ]

    @dg.asset(partitions_def=partitions.ticker_day_partitions, backfill_policy=policy)
    def ragged() -> None: ...

    graph = dg.Definitions(assets=[ragged]).resolve_asset_graph()
    with partition_loading_context(dynamic_partitions_store=instance):
        requests = build_run_requests_with_backfill_policies(
            [AssetKeyPartitionKey(ragged.key, key) for key in selected], graph, instance
        )
    covered = []
    for request in requests:
        key_range = dg.PartitionKeyRange(
            request.tags[ASSET_PARTITION_RANGE_START_TAG],
            request.tags[ASSET_PARTITION_RANGE_END_TAG],
        )
        keys = partitions.ticker_day_partitions.get_partition_keys_in_range(
            key_range, dynamic_partitions_store=instance
        )
        assert chunk is None or len(keys) <= chunk
        covered.extend(map(str, keys))
    assert sorted(covered) == sorted(selected)
