"""`CANDLE_SOURCE=yahoo` end to end: real PostgreSQL, real Dagster runs, recorded Yahoo answers."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from candle_pipeline import runs
from candle_pipeline.definitions import ASSETS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.warehouse import engine_for, ensure_tables
from candle_pipeline.settings import Settings
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import create_database
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, Fault, yahoo_definitions
from candle_pipeline_tests.providers.yahoo_fixtures import YAHOO_FIXTURES, recorded_bars

pytestmark = pytest.mark.integration

NVDA = "historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
AROUND_SPLIT = (date(2021, 7, 19), date(2021, 7, 21))


def table(url: str, name: str) -> pd.DataFrame:
    with engine_for(url).connect() as conn:
        frame = pd.read_sql(
            sa.select(sa.text("*")).select_from(sa.table(name, schema="market")), conn
        )
    keys = [c for c in ("ticker", "interval", "ts", "ex_date", "mic", "session_date") if c in frame]
    return frame.sort_values(keys).reset_index(drop=True)


def materialize(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    tickers: list[str],
    days: tuple[date, date],
    select: tuple[str, ...] = runs.ALL_ASSETS,
) -> list[runs.RunOutcome]:
    registered = instance.get_dynamic_partitions(TICKERS_PARTITION_NAME)
    instance.add_dynamic_partitions(
        TICKERS_PARTITION_NAME, [t for t in tickers if t not in registered]
    )
    return runs.materialize(defs, instance, tickers, *days, select=select)


def raw_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_quotes")), limit=100
    ).records
    mine = [r for r in records if r.run_id == run_id]
    assert mine
    return {key: value.value for key, value in mine[0].asset_materialization.metadata.items()}


def test_nvda_split_replayed_from_raw_quotes_to_candles(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    settings = Settings.from_env(
        {"CANDLE_SOURCE": "yahoo", "CANDLE_YAHOO_REPLAY_DIR": str(YAHOO_FIXTURES)}
    )
    defs = dg.Definitions(assets=ASSETS, resources=build_resources(settings, url))
    ensure_tables(url)
    with engine_for(url).begin() as connection:
        watchlist.add(connection, [watchlist.NewTicker("NVDA")], "XNYS")
    outcomes = materialize(defs, instance, ["NVDA"], AROUND_SPLIT)
    assert all(o.success for o in outcomes), [o.error for o in outcomes]
    with engine_for(url).connect() as connection:
        [nvda] = watchlist.entries(connection)
        moves = watchlist.exchange_corrections(connection)
    assert nvda.provider_exchange == "NMS", "recorded from Yahoo's answer"
    assert moves == {"NVDA": ("XNYS", "XNAS")}, "for new_tickers_sensor to act on"

    expected = recorded_bars(NVDA).loc["2021-07-19":"2021-07-21"]
    raw = table(url, "raw_quotes")
    assert list(raw["trade_date"]) == [d.date() for d in expected.index]
    assert set(raw["source"]) == {"yahoo"}
    for column in ("open", "high", "low", "close", "volume", "adj_close"):
        assert raw[column].tolist() == expected[column].tolist(), column

    actions = table(url, "corporate_actions")
    assert actions[["ticker", "ex_date", "split_ratio"]].to_dict("records") == [
        {"ticker": "NVDA", "ex_date": date(2021, 7, 20), "split_ratio": 4.0}
    ]
    assert actions["dividend"].isna().all()

    candles = table(url, "candles")
    assert set(candles["interval"]) == {"1d"}, "daily bars give daily candles only"
    assert candles["close"].tolist() == expected["close"].tolist()
    assert candles["ts"].tolist() == [
        pd.Timestamp(f"{day.date()} 13:30", tz="UTC") for day in expected.index
    ]

    metadata = raw_metadata(instance, outcomes[-1].run_id)
    assert metadata["provider"] == "yahoo"
    assert metadata["provider_requests"] >= 1
    assert metadata["provider_retries"] == 0
    assert metadata["corporate_actions_written"] == 1
    assert "throttled_seconds" in metadata


def test_retries_are_recorded_and_a_failed_ticker_writes_nothing(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    with FakeYahoo() as yahoo:
        defs = yahoo_definitions(url, yahoo.base_url, requests_per_minute=6000.0)
        yahoo.fail("NVDA", Fault(500))
        outcomes = materialize(defs, instance, ["NVDA"], AROUND_SPLIT)
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        metadata = raw_metadata(instance, outcomes[-1].run_id)
        assert metadata["provider_retries"] == 1
        assert metadata["backoff_seconds"] > 0
        assert metadata["provider_requests"] >= 2
        before = {name: table(url, name) for name in ("raw_quotes", "corporate_actions")}
        assert len(before["raw_quotes"]) == 3

        later = (date(2021, 7, 22), date(2021, 7, 23))
        failed = materialize(defs, instance, ["NVDA", "ZZZZ"], later)
    assert failed[0].success, "market_timings"
    assert not failed[-1].success
    assert "ZZZZ" in failed[-1].error
    assert "No data found, symbol may be delisted" in failed[-1].error
    for name, frame in before.items():
        pd.testing.assert_frame_equal(table(url, name), frame, obj=name)
    assert len(yahoo.chart_calls("NVDA")) == 2 + 1, "NVDA was fetched, then nothing stored"
