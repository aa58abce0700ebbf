"""`CANDLE_SOURCE=yahoo` end to end: real PostgreSQL, real Dagster runs, recorded Yahoo answers
(replayed, or served by a real local HTTP server that injects the faults a test asks for)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.definitions import build_assets
from candle_pipeline.domain.ticker_days import COMPLETE, FAILED, RETRY_LATER
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for
from candle_pipeline.sensors.retries import retry_sensor
from candle_pipeline.settings import Settings
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import create_database, table, watch
from candle_pipeline_tests.providers.fake_yahoo import (
    Arrival,
    FakeYahoo,
    Fault,
    yahoo_definitions,
)
from candle_pipeline_tests.providers.yahoo_fixtures import (
    YAHOO_FIXTURES,
    fast_retry,
    recorded_bars,
)
from candle_pipeline_tests.quality.records import latest_evaluations
from candle_pipeline_tests.run_requests import raw_metadata

pytestmark = pytest.mark.integration

NVDA = "historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
AROUND_SPLIT = (date(2021, 7, 19), date(2021, 7, 21))
DAYS = {"2021-07-19", "2021-07-20", "2021-07-21"}
RAW = dg.AssetKey("raw_quotes")
# The fake service asks MSFT's client to wait 3 s, longer than the 1 s it waits within a run;
# a refused ticker is asked again after 3 s, then after 6 s.
RETRY_AFTER_SECONDS = 3
MAX_WAIT_IN_RUN_SECONDS = 1.0


def materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, **kwargs: object
) -> list[runs.RunOutcome]:
    outcomes = runs.materialize(defs, instance, *AROUND_SPLIT, **kwargs)
    assert all(o.success for o in outcomes), [o.error for o in outcomes]
    return outcomes


def due_retries(instance: dg.DagsterInstance, url: str) -> dg.SensorResult:
    """One tick of the retry sensor."""
    resources = {"warehouse": WarehouseResource(database_url=url)}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return retry_sensor(context)


def requests_for(yahoo: FakeYahoo, symbol: str) -> list[Arrival]:
    """Every request about `symbol` (an unknown one fails at its time-zone lookup)."""
    return [arrival for arrival in yahoo.arrivals if arrival.symbol == symbol]


def states(url: str) -> pd.DataFrame:
    return table(url, "ticker_days").set_index(["ticker", "trade_date"])


def test_nvda_split_replayed_from_raw_quotes_to_candles(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    settings = Settings.from_env(
        {"CANDLE_SOURCE": "yahoo", "CANDLE_YAHOO_REPLAY_DIR": str(YAHOO_FIXTURES)}
    )
    defs = dg.Definitions(assets=build_assets(settings), resources=build_resources(settings, url))
    watch(url, ["NVDA"], AROUND_SPLIT[0])
    [outcome] = materialize(defs, instance)
    with engine_for(url).connect() as connection:
        [nvda] = watchlist.entries(connection)
        moves = watchlist.exchange_corrections(connection)
    assert nvda.provider_exchange == "NMS", "recorded from Yahoo's answer"
    assert moves == {"NVDA": ("XNYS", "XNAS")}, "for new_tickers_sensor to act on"

    recorded_days = recorded_bars(NVDA).loc["2021-07-19":"2021-07-21"]
    # Recorded in 2025: Yahoo divided each bar by the 4:1 split of 2021-07-20 (bars before it)
    # and the 10:1 one of 2024-06-10, which only the request for later actions reports.
    later_splits = pd.Series([40.0, 10.0, 10.0], index=recorded_days.index)
    raw = table(url, "raw_quotes")
    assert list(raw["trade_date"]) == [d.date() for d in recorded_days.index]
    assert set(raw["source"]) == {"yahoo"}
    for column in ("open", "high", "low", "close"):
        traded = recorded_days[column] * later_splits
        assert raw[column].tolist() == pytest.approx(traded.tolist(), rel=1e-6), column
    assert raw["close"].iloc[0] == 751.19, "NVDA's close of 2021-07-19 as traded"
    assert raw["volume"].tolist() == (recorded_days["volume"] / later_splits).round().tolist()
    assert raw["adj_close"].tolist() == recorded_days["adj_close"].tolist(), "Yahoo's, as served"

    actions = table(url, "corporate_actions")
    assert actions[["ticker", "ex_date", "split_ratio"]].to_dict("records") == [
        {"ticker": "NVDA", "ex_date": date(2021, 7, 20), "split_ratio": 4.0},
        {"ticker": "NVDA", "ex_date": date(2024, 6, 10), "split_ratio": 10.0},
    ]
    assert actions["dividend"].isna().all()
    assert actions["first_seen"].notna().all()
    factors = table(url, "adjustment_factors")
    assert factors["price_factor"].tolist() == [40.0, 10.0]

    candles = table(url, "candles")
    assert set(candles["interval"]) == {"1d"}, "daily bars give daily candles only"
    for column in ("open", "high", "low", "close"):
        # A one-bar candle holds that bar's stored doubles, read back bit for bit.
        assert candles[column].tolist() == raw[column].tolist(), column
    assert candles["ts"].tolist() == [
        pd.Timestamp(f"{day.date()} 13:30", tz="UTC") for day in recorded_days.index
    ]
    assert set(states(url)["status"]) == {COMPLETE}

    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["provider"] == "yahoo"
    assert metadata["run_provider_requests"] >= 1
    assert metadata["run_provider_retries"] == 0


def test_a_retry_within_the_run_is_recorded(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["NVDA"], AROUND_SPLIT[0])
    with FakeYahoo() as yahoo:
        defs = yahoo_definitions(url, yahoo.base_url, requests_per_minute=6000.0)
        yahoo.fail("NVDA", Fault(500))
        [outcome] = materialize(defs, instance)
    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["run_provider_retries"] == 1
    assert metadata["run_backoff_seconds"] > 0
    assert len(yahoo.chart_calls("NVDA")) == 2 + 1, "two tries, then the later actions"
    assert set(states(url)["status"]) == {COMPLETE}


def test_a_404_and_a_429_fail_two_tickers_not_the_run_and_the_retry_fetches_only_them(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["NVDA", "MSFT", "ZZZZ"], AROUND_SPLIT[0])
    with FakeYahoo() as yahoo:
        defs = yahoo_definitions(
            url,
            yahoo.base_url,
            requests_per_minute=6000.0,
            retry=fast_retry(MAX_WAIT_IN_RUN_SECONDS),
            failed_retry_first_wait_seconds=RETRY_AFTER_SECONDS,
        )
        yahoo.fail("MSFT", Fault(429, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))
        before_run = datetime.now(UTC)
        materialize(defs, instance)

        after = states(url)
        nvda = after.xs("NVDA", level="ticker")
        assert (nvda["status"] == COMPLETE).sum() == 3, "the other ticker is stored"
        assert len(table(url, "candles")) == 3
        msft = after.xs("MSFT", level="ticker")
        assert set(msft["status"]) == {RETRY_LATER}
        assert msft["last_error"].str.contains("HTTP 429").all()
        assert (msft["retry_after"] >= pd.Timestamp(before_run)).all()
        zzzz = after.xs("ZZZZ", level="ticker")
        assert set(zzzz["status"]) == {FAILED}
        assert zzzz["last_error"].str.contains("No data found, symbol may be delisted").all()
        assert (zzzz["attempts"] == 1).all()

        coverage = latest_evaluations(instance, "coverage", RAW)
        assert set(coverage) >= DAYS
        for day in DAYS:
            evaluation = coverage[day]
            assert not evaluation.passed
            assert evaluation.metadata["offending_ticker_days"].value == (
                "MSFT (retry_later), ZZZZ (failed)"
            )

        latest = after["retry_after"].max()
        assert latest <= pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=RETRY_AFTER_SECONDS)
        time.sleep(max(0.0, (latest - pd.Timestamp.now(tz="UTC")).total_seconds()))
        [request] = due_retries(instance, url).run_requests
        assert request.run_config["ops"]["market_data"]["config"]["tickers"] == ["MSFT", "ZZZZ"]
        nvda_calls = len(yahoo.chart_calls("NVDA"))
        zzzz_calls = len(requests_for(yahoo, "ZZZZ"))
        assert zzzz_calls > 0
        retried = defs.resolve_job_def("market_data_job").execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags
        )
        assert retried.success
        assert len(yahoo.chart_calls("NVDA")) == nvda_calls, "complete days cost no call"
        assert len(yahoo.chart_calls("MSFT")) == 2 + 1, "429, the bars, the later actions"
        assert len(requests_for(yahoo, "ZZZZ")) == 2 * zzzz_calls, "asked again, once"

    final = states(url)
    assert set(final.xs("MSFT", level="ticker")["status"]) == {COMPLETE}
    zzzz = final.xs("ZZZZ", level="ticker")
    assert set(zzzz["status"]) == {FAILED} and (zzzz["attempts"] == 2).all()
    assert not due_retries(instance, url).run_requests, "ZZZZ waits twice as long now"
