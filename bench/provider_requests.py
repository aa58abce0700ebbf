"""Figure 6: provider requests for the daily update of the S&P 500 (503 US tickers, one
session), counted, not timed.

Polygon: the project's client (rate limiter in PostgreSQL, retry policy, breaker) against a local
fake of Polygon's REST API answering grouped daily with a made-up bar for every ticker, in
Polygon's format; its requests are counted by the client and by the fake service. Yahoo: its
chart API takes one symbol per request; the count is what the Yahoo client's own request planner
(`domain.request_windows`, Yahoo's windows) plans for these tickers and this day.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from bench.common import Report, create_database, section, tickers
from candle_pipeline.domain.request_windows import request_windows
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.providers.http import Answer
from candle_pipeline.providers.polygon import GROUPED_PATH, polygon_symbol
from candle_pipeline.providers.yahoo import YAHOO_WINDOW_LIMITS

SECTION = "provider requests"
SP500 = 503
DAY = date(2025, 1, 2)
KEY = "bench-key"
# The fake service answers at once; the bench counts requests, it does not wait for Polygon's
# free-tier rate.
UNTHROTTLED_PER_MINUTE = 6000.0
MADE_UP_PRICE = 100.0


def run(server: LocalPostgres, report: Report) -> None:
    from candle_pipeline.resources.market_data import MarketDataResource  # noqa: PLC0415
    from candle_pipeline.resources.warehouse import WarehouseResource  # noqa: PLC0415
    from candle_pipeline_tests.providers.fake_rest import JSON, FakeRest  # noqa: PLC0415

    section(f"6. provider requests: daily update of {SP500} US tickers ({DAY})")
    symbols = tickers(SP500)
    stamp = int(1000 * (DAY - date(1970, 1, 1)) / timedelta(seconds=1))

    def grouped(path: str, query: dict[str, str]) -> Answer | None:
        if path == GROUPED_PATH.format(day=DAY.isoformat()):
            bar = {"o": MADE_UP_PRICE, "h": MADE_UP_PRICE, "l": MADE_UP_PRICE}
            results = [
                {"T": polygon_symbol(t), **bar, "c": MADE_UP_PRICE, "v": 1, "t": stamp}
                for t in symbols
            ]
            return Answer(200, dict(JSON), json.dumps({"results": results}).encode())
        if path.startswith("/v3/reference/"):
            return Answer(200, dict(JSON), b'{"results": []}')
        return None

    with FakeRest(key=KEY, generate=grouped) as polygon:
        client = MarketDataResource(
            source="polygon",
            csv_dir="",
            warehouse=WarehouseResource(database_url=create_database(server, "providers")),
            polygon_api_key=KEY,
            polygon_base_url=polygon.base_url,
            polygon_requests_per_minute=UNTHROTTLED_PER_MINUTE,
        )
        fetched = client.fetch_all({ticker: [DAY] for ticker in symbols})
    assert not fetched.failures, list(fetched.failures.items())[:3]
    assert len(fetched.bars) == SP500
    bar_requests = len(polygon.paths("/v2/aggs/"))
    yahoo = sum(
        len(request_windows([DAY], "1d", DAY + timedelta(days=1), YAHOO_WINDOW_LIMITS, "Yahoo"))
        for _ in symbols
    )
    report.add(SECTION, "Yahoo chart requests (one symbol each)", yahoo, "requests", "planned")
    report.add(SECTION, "Polygon grouped daily, bars", bar_requests, "requests", "counted")
    report.add(
        SECTION,
        "Polygon, with splits and dividends",
        fetched.requests_by_source["polygon"],
        "requests",
        f"counted; {yahoo / bar_requests:.0f}x fewer bar requests than Yahoo",
    )
