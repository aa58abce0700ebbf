"""Polygon, ccxt, routing and fallback end to end: real PostgreSQL, real Dagster runs, market
data from recorded answers (replayed, or served by a real local HTTP server)."""

from __future__ import annotations

import logging
from datetime import date

import dagster as dg
import pandas as pd
import pytest

from candle_pipeline import runs
from candle_pipeline.definitions import build_assets
from candle_pipeline.domain.ticker_days import CLOSED, COMPLETE, FAILED
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource, engine_for
from candle_pipeline.settings import ENV_POLYGON_API_KEY, Settings, SettingsError, get_settings
from candle_pipeline.warehouse import watchlist
from candle_pipeline_tests.conftest import FIXTURES_DIR, create_database, table, watch
from candle_pipeline_tests.providers.fake_exchange import KLINES_PATH, fake_binance
from candle_pipeline_tests.providers.fake_rest import FakeRest
from candle_pipeline_tests.providers.yahoo_fixtures import FAST_RETRY, YAHOO_FIXTURES
from candle_pipeline_tests.run_requests import raw_metadata

pytestmark = pytest.mark.integration

POLYGON_FIXTURES = FIXTURES_DIR / "polygon-http"
GROUPED_TICKERS = ["AAPL", "AIG", "BAC", "IBM", "SPY"]
# Lean's unadjusted daily bars of 2005-04-04, as the hand-made grouped answer serves them.
CLOSES_2005_04_04 = {"AAPL": 41.08, "AIG": 53.23, "BAC": 44.15, "IBM": 90.36, "SPY": 117.59}
KEY = "pk-test-1234567890abcdef"
WRONG_KEY = "pk-wrong-fedcba0987654321"
# Tests do not wait for Polygon's free-tier rate (5 a minute).
TEST_POLYGON_RATE = 600.0


def market_data(url: str, **config: object) -> MarketDataResource:
    """The real client on `url`, with fast retries."""
    return MarketDataResource(
        csv_dir="",
        warehouse=WarehouseResource(database_url=url),
        retry=FAST_RETRY,
        request_timeout_seconds=2.0,
        polygon_requests_per_minute=TEST_POLYGON_RATE,
        **config,
    )


def definitions(url: str, client: MarketDataResource) -> dg.Definitions:
    return dg.Definitions(
        assets=build_assets(get_settings()),
        resources={**build_resources(Settings.from_env({}), url), "market_data": client},
    )


def materialize(
    defs: dg.Definitions, instance: dg.DagsterInstance, start: date, end: date
) -> runs.RunOutcome:
    [outcome] = runs.materialize(defs, instance, start, end)
    return outcome


def states(url: str) -> pd.DataFrame:
    return table(url, "ticker_days").set_index(["ticker", "trade_date"])


def test_a_day_of_several_us_tickers_is_one_grouped_request(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    day = date(2005, 4, 4)
    watch(url, GROUPED_TICKERS, day)
    with FakeRest(POLYGON_FIXTURES, key=KEY) as polygon:
        client = market_data(
            url, source="polygon", polygon_api_key=KEY, polygon_base_url=polygon.base_url
        )
        outcome = materialize(definitions(url, client), instance, day, day)
    assert outcome.success, outcome.error

    assert polygon.paths("/v2/aggs/") == ["/v2/aggs/grouped/locale/us/market/stocks/2005-04-04"]
    assert polygon.paths("/v3/reference/") == ["/v3/reference/splits", "/v3/reference/dividends"]
    [grouped] = [r for r in polygon.requests if r.path.startswith("/v2/aggs/")]
    assert grouped.query == {"adjusted": "false"}, "raw prices, as traded"
    assert {r.authorization for r in polygon.requests} == {f"Bearer {KEY}"}

    raw = table(url, "raw_quotes")
    assert dict(zip(raw["ticker"], raw["close"], strict=True)) == CLOSES_2005_04_04
    assert set(raw["ts"]) == {pd.Timestamp("2005-04-04 04:00", tz="UTC")}, "midnight New York"
    assert set(raw["source"]) == {"polygon"}
    assert set(states(url)["status"]) == {COMPLETE}
    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["run_requests_polygon"] == 3, "one grouped request, splits, dividends"
    assert metadata["run_provider_requests"] == 3


def test_polygon_range_pages_with_raw_prices_across_the_dst_change(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    settings = Settings.from_env(
        {"CANDLE_SOURCE": "polygon", "CANDLE_POLYGON_REPLAY_DIR": str(POLYGON_FIXTURES)}
    )
    defs = dg.Definitions(assets=build_assets(settings), resources=build_resources(settings, url))
    watch(url, ["AAPL"], date(2005, 4, 1))
    outcome = materialize(defs, instance, date(2005, 4, 1), date(2005, 4, 4))
    assert outcome.success, outcome.error

    raw = table(url, "raw_quotes")
    # One ticker over two sessions: one range request (two pages), not two grouped ones.
    assert raw["ts"].tolist() == [
        pd.Timestamp("2005-04-01 05:00", tz="UTC"),  # EST
        pd.Timestamp("2005-04-04 04:00", tz="UTC"),  # EDT, after the 2005-04-03 change
    ]
    assert raw["trade_date"].tolist() == [date(2005, 4, 1), date(2005, 4, 4)]
    assert raw["close"].tolist() == [40.90, 41.08], "unadjusted (the adjusted answer says 1.46)"
    assert raw["volume"].tolist() == [22179617.0, 19665545.0]
    candles = table(url, "candles")
    assert candles["close"].tolist() == [40.90, 41.08]
    assert set(candles["interval"]) == {"1d"}
    days = states(url)
    assert days.loc["AAPL", "status"].tolist() == [COMPLETE, CLOSED, CLOSED, COMPLETE]
    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["run_requests_polygon"] == 4, "two pages of bars, splits, dividends"


def test_polygon_without_a_key_is_a_start_up_error() -> None:
    with pytest.raises(SettingsError, match=ENV_POLYGON_API_KEY):
        Settings.from_env({"CANDLE_SOURCE": "polygon"})
    with pytest.raises(SettingsError, match=ENV_POLYGON_API_KEY):
        Settings.from_env({"CANDLE_FALLBACK_SOURCES": "polygon"})


def test_a_refused_key_fails_the_run_in_one_line_and_the_key_is_never_shown(
    pg_server: LocalPostgres,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = create_database(pg_server, "warehouse")
    day = date(2005, 4, 4)
    watch(url, ["AAPL", "IBM"], day)
    caplog.set_level(logging.DEBUG)
    with FakeRest(POLYGON_FIXTURES, key=KEY) as polygon:
        client = market_data(
            url,
            source="polygon",
            polygon_api_key=dg.EnvVar(ENV_POLYGON_API_KEY),
            polygon_base_url=polygon.base_url,
        )
        monkeypatch.setenv(ENV_POLYGON_API_KEY, WRONG_KEY)
        refused = materialize(definitions(url, client), instance, day, day)
        monkeypatch.setenv(ENV_POLYGON_API_KEY, KEY)
        accepted = materialize(definitions(url, client), instance, day, day)

    assert not refused.success
    assert "HTTP 401" in refused.error and "refused the API key" in refused.error
    assert "Unknown API Key" in refused.error, "Polygon's own words"
    assert polygon.requests[0].authorization == f"Bearer {WRONG_KEY}", "sent as Polygon expects"
    assert accepted.success, accepted.error
    assert states(url).loc[("AAPL", date(2005, 4, 4)), "status"] == COMPLETE

    shown = [refused.error or "", capfd.readouterr().out, capfd.readouterr().err, caplog.text]
    for run_id in (refused.run_id, accepted.run_id):
        for entry in instance.all_logs(run_id):
            shown.append(entry.message)
            shown.append(repr(entry.dagster_event))
    shown.extend(repr(v) for v in raw_metadata(instance, accepted.run_id).values())
    for name in ("ticker_days", "raw_quotes", "corporate_actions"):
        shown.append(table(url, name).to_csv())
    for secret in (KEY, WRONG_KEY):
        assert not [text for text in shown if secret in text]


def test_a_crypto_pair_counts_every_minute_of_a_weekend_day(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    saturday = date(2024, 2, 3)
    watch(url, ["BTC/USDT"], saturday)
    with fake_binance() as binance:
        client = market_data(url, source="csv", ccxt_interval="1m", ccxt_base_url=binance.base_url)
        outcome = materialize(definitions(url, client), instance, saturday, saturday)
    assert outcome.success, outcome.error

    with engine_for(url).connect() as connection:
        [entry] = watchlist.entries(connection)
    assert entry.exchange == "24/7", "a crypto pair trades every day"
    klines = [r for r in binance.requests if r.path == KLINES_PATH]
    assert len(klines) == 2, "1,440 minutes in pages of 1,000"
    assert {r.query["limit"] for r in klines} == {"1000"}
    raw = table(url, "raw_quotes")
    assert len(raw) == 1440
    assert set(raw["source"]) == {"ccxt:binance"}
    day = states(url).loc[("BTC/USDT", saturday)]
    assert day["status"] == COMPLETE
    assert day["quality_score"] == 1.0, "1,440 of 1,440 expected minutes"
    timings = table(url, "market_timings")
    assert timings.set_index("mic").loc["24/7", "expected_minute_bars"] == 1440
    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["run_requests_ccxt:binance"] == 3, "the market list, then two pages"
    assert metadata["run_rows_dropped_outside_requested_days"] == 560


def test_one_run_routes_each_ticker_and_falls_back_with_provenance(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    day = date(2021, 7, 19)
    watch(url, ["MSFT", "BTC/USDT"], day)
    with engine_for(url).begin() as connection:
        watchlist.add(
            connection,
            [
                watchlist.NewTicker("NVDA", history_start=day, provider="polygon"),
                watchlist.NewTicker("ZZZZ", history_start=day, provider="polygon"),
            ],
            "XNYS",
            day,
        )
    with FakeRest(POLYGON_FIXTURES, key=KEY) as polygon, fake_binance() as binance:
        client = market_data(
            url,
            source="yahoo",
            yahoo_replay_dir=str(YAHOO_FIXTURES),
            fallback_sources=["yahoo"],
            polygon_api_key=KEY,
            polygon_base_url=polygon.base_url,
            ccxt_interval="1m",
            ccxt_base_url=binance.base_url,
        )
        outcome = materialize(definitions(url, client), instance, day, day)
    assert outcome.success, outcome.error

    assert polygon.paths("/v2/aggs/") == ["/v2/aggs/grouped/locale/us/market/stocks/2021-07-19"]
    assert binance.paths(KLINES_PATH), "the crypto pair went to the exchange"
    days = states(url).xs(day, level="trade_date")
    assert days["status"].to_dict() == {
        "BTC/USDT": COMPLETE,
        "MSFT": COMPLETE,
        "NVDA": COMPLETE,
        "ZZZZ": FAILED,
    }
    assert days["source"].to_dict() == {
        "BTC/USDT": "ccxt:binance",
        "MSFT": "yahoo",
        "NVDA": "yahoo",
        "ZZZZ": None,
    }
    assert days.loc["NVDA", "fallback_reason"].startswith("polygon: ")
    assert "HTTP 404" in days.loc["NVDA", "fallback_reason"]
    assert days[["fallback_reason"]].drop(index="NVDA")["fallback_reason"].isna().all()
    zzzz = days.loc["ZZZZ", "last_error"]
    assert "polygon: " in zzzz and "; yahoo: " in zzzz, "every source's reason"
    raw = table(url, "raw_quotes")
    assert "ZZZZ" not in set(raw["ticker"]), "nothing partial is stored"
    sources = raw.groupby("ticker")["source"].unique().map(list).to_dict()
    assert sources == {"BTC/USDT": ["ccxt:binance"], "MSFT": ["yahoo"], "NVDA": ["yahoo"]}
    metadata = raw_metadata(instance, outcome.run_id)
    assert metadata["run_fallbacks"] == 1
    assert metadata["tickers_fallback"] == 1
