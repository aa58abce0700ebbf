"""Polygon and ccxt behind the client: recorded answers, the request plan, bans and throttling.
The client is real (rate limiter in PostgreSQL, retry policy, breaker); only HTTP is served
from recordings, by the replay or by a real local server."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import pytest

from candle_pipeline.domain.ticker_days import FAILED, RETRY_LATER
from candle_pipeline.providers.base import CallStats
from candle_pipeline.providers.crypto import CcxtProvider
from candle_pipeline.providers.http import Answer, counting
from candle_pipeline.providers.polygon import corporate_actions
from candle_pipeline.providers.replay import ReplayMissError
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline_tests.conftest import FIXTURES_DIR
from candle_pipeline_tests.providers.fake_exchange import (
    BINANCE_FIXTURES,
    KLINES_PATH,
    fake_binance,
)
from candle_pipeline_tests.providers.fake_rest import JSON, FakeRest, Fault
from candle_pipeline_tests.providers.yahoo_fixtures import FAST_RETRY

POLYGON_FIXTURES = FIXTURES_DIR / "polygon-http"
# ccxt's recorded Binance answers with its parsed result (ccxt/ccxt, MIT; ccxt-http/README.md).
CCXT_RECORDED_OHLCV = FIXTURES_DIR / "ccxt-http" / "binance-fetchOHLCV.json"
KEY = "pk-test-1234567890abcdef"
BAN_SECONDS = 120


def client(warehouse_url: str | None = None, **config: object) -> MarketDataResource:
    return MarketDataResource(
        csv_dir="",
        warehouse=WarehouseResource(database_url=warehouse_url or "postgresql://unused/x"),
        retry=FAST_RETRY,
        request_timeout_seconds=2.0,
        polygon_requests_per_minute=600.0,
        **config,
    )


def recorded_splits_and_dividends() -> tuple[list[dict], list[dict]]:
    reference = POLYGON_FIXTURES / "v3" / "reference"
    splits = json.loads((reference / "splits.json").read_text())["results"]
    dividends = json.loads((reference / "dividends.json").read_text())["results"]
    return splits, dividends


def test_polygon_splits_and_dividends_become_corporate_actions() -> None:
    splits, dividends = recorded_splits_and_dividends()
    days = [date(2022, 5, 2), date(2022, 5, 20), date(2022, 6, 22), date(2022, 6, 29)]
    days += [date(2023, 8, 11)]
    actions = corporate_actions(splits, dividends, days).sort_values(["ex_date", "ticker"])
    assert list(zip(actions["ticker"], actions["ex_date"].dt.date, strict=True)) == [
        ("CIG-C", date(2022, 5, 2)),  # our spelling of Polygon's CIG.C
        ("BRW", date(2022, 5, 20)),
        ("SHOP", date(2022, 6, 22)),  # one split Polygon files under two dates
        ("SHOP", date(2022, 6, 29)),
        ("AIRTP", date(2023, 8, 11)),
    ]
    # New shares per old: 3 -> 4, a reverse split 2 -> 1, 1 -> 10; then a dividend alone.
    assert actions["split_ratio"].iloc[:4].tolist() == pytest.approx([4 / 3, 0.5, 10.0, 10.0])
    assert actions["dividend"].iloc[:4].isna().all()
    assert math.isnan(actions["split_ratio"].iloc[4]), "no split that day"
    assert actions["dividend"].iloc[4] == 0.5, "cash per share"
    assert corporate_actions(splits, dividends, [date(2005, 4, 4)]).empty, "requested days only"


def test_polygon_asks_per_ticker_when_that_needs_fewer_requests() -> None:
    resource = client(source="polygon", polygon_replay_dir=str(POLYGON_FIXTURES))
    days = [date(2005, 4, 1), date(2005, 4, 4)]
    fetched = resource.fetch_all({"AAPL": days})
    assert not fetched.failures
    # Two days of one ticker: one range request (two pages here) instead of two grouped days,
    # then the ticker's splits and dividends.
    assert fetched.requests_by_source == {"polygon": 4}
    assert fetched.bars["close"].tolist() == [40.90, 41.08]


def test_a_replay_miss_names_what_is_recorded() -> None:
    resource = client(source="polygon", polygon_replay_dir=str(POLYGON_FIXTURES))
    fetched = resource.fetch_all({"NVDA": [date(2005, 4, 4)]})
    error = fetched.failures["NVDA"].error
    assert fetched.failures["NVDA"].status == FAILED
    assert "no recorded polygon answer to /v2/aggs/ticker/NVDA/range/1/day" in error
    assert "recorded: nothing for this path" in error
    with pytest.raises(ReplayMissError, match="holds no recorded"):
        client(
            source="polygon", polygon_replay_dir=str(FIXTURES_DIR / "factor_files")
        ).provider_for("polygon")


def test_polygon_429_is_retried_within_the_run(warehouse_url: str) -> None:
    with FakeRest(POLYGON_FIXTURES, key=KEY) as polygon:
        polygon.fail("/v2/aggs/grouped", Fault(429, {"Retry-After": "0"}))
        resource = client(
            warehouse_url, source="polygon", polygon_api_key=KEY, polygon_base_url=polygon.base_url
        )
        fetched = resource.fetch_all({"AAPL": [date(2005, 4, 4)], "IBM": [date(2005, 4, 4)]})
    assert not fetched.failures
    assert fetched.cost.retries == 1
    assert len(polygon.paths("/v2/aggs/grouped")) == 2, "asked again after the 429"


def test_ccxt_parses_the_recorded_binance_answer_as_ccxt_does() -> None:
    [spot] = [
        entry
        for entry in json.loads(CCXT_RECORDED_OHLCV.read_text())
        if entry["description"] == "Spot OHLCV with since and limit"
    ]
    symbol, timeframe, since, limit = spot["input"]
    resource = client(source="ccxt", ccxt_interval=timeframe, ccxt_replay_dir=str(BINANCE_FIXTURES))
    provider = resource.provider_for("ccxt")
    assert isinstance(provider, CcxtProvider)
    provider.page_limit = limit
    stats = CallStats()
    with counting(stats):
        candles = provider.candles(symbol, since, stats)
    assert candles == spot["parsedResponse"]
    assert stats.requests == 2, "the market list, then the candles"


def test_an_exchange_ban_is_retry_later_without_asking_again(warehouse_url: str) -> None:
    day = date(2024, 2, 3)
    with fake_binance() as binance:
        binance.fail(KLINES_PATH, Fault(418, {"Retry-After": str(BAN_SECONDS)}))
        resource = client(
            warehouse_url, source="csv", ccxt_interval="1m", ccxt_base_url=binance.base_url
        )
        before = datetime.now(UTC)
        fetched = resource.fetch_all({"BTC/USDT": [day]})
    failure = fetched.failures["BTC/USDT"]
    assert failure.status == RETRY_LATER
    assert "HTTP 418" in failure.error and "banned" in failure.error
    assert failure.retry_after is not None
    assert (failure.retry_after - before).total_seconds() >= BAN_SECONDS
    assert len(binance.paths(KLINES_PATH)) == 1, "asking again would extend the ban"


def test_polygon_garbage_fails_that_ticker_alone(warehouse_url: str) -> None:
    garbage = {"results": [{"t": "yesterday", "o": "cheap", "h": 1, "l": 1, "c": 1, "v": 1}]}

    def answer(path: str, query: dict[str, str]) -> Answer | None:
        if path.startswith("/v2/aggs/ticker/IBM/"):
            return Answer(200, dict(JSON), json.dumps(garbage).encode())
        if path.startswith("/v2/aggs/ticker/SPY/"):
            return Answer(200, dict(JSON), b'{"results": "none"}')
        return None

    day = date(2005, 4, 4)
    with FakeRest(POLYGON_FIXTURES, key=KEY, generate=answer) as polygon:
        # Hour bars: one range request per ticker (grouped daily serves daily bars only).
        resource = client(
            warehouse_url,
            source="polygon",
            polygon_api_key=KEY,
            polygon_base_url=polygon.base_url,
            polygon_interval="1h",
        )
        fetched = resource.fetch_all({"IBM": [day], "SPY": [day]})
    assert polygon.paths("/v2/aggs/") == [
        "/v2/aggs/ticker/IBM/range/1/hour/2005-04-04/2005-04-04",
        "/v2/aggs/ticker/SPY/range/1/hour/2005-04-04/2005-04-04",
    ]
    assert fetched.results == {}, "nothing of either is stored; the run goes on"
    assert fetched.failures["IBM"].status == FAILED
    assert "Polygon IBM" in fetched.failures["IBM"].error
    assert "not a list of objects" in fetched.failures["SPY"].error
