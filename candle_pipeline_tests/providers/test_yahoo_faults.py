"""Fault injection at the HTTP boundary: a real local server, the real yfinance and curl_cffi."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest

from candle_pipeline.providers.base import ProviderError, ProviderUnavailableError
from candle_pipeline.providers.registry import build_provider
from candle_pipeline.providers.resilience import BreakerSettings
from candle_pipeline.providers.yahoo import YahooProvider
from candle_pipeline_tests.providers.fake_yahoo import FakeYahoo, Fault
from candle_pipeline_tests.providers.yahoo_fixtures import (
    FAST_RETRY,
    YAHOO_FIXTURES,
    recorded,
    yahoo_client,
)

SPLIT_DAY = [date(2021, 7, 20)]
# The splits up to the request day: the split day's own and NVDA's 10:1 of 2024, from the one
# request for the corporate actions after the asked days.
SPLITS_SEEN = [4.0, 10.0]
# Generous, so that a loaded test machine never turns a slow answer into a timeout; the timeout
# test uses its own short one.
CLIENT_TIMEOUT = 5.0
SHORT_TIMEOUT = 0.5


@pytest.fixture
def yahoo() -> Iterator[FakeYahoo]:
    with FakeYahoo() as service:
        yield service


def provider_for(
    service: FakeYahoo, breaker_failures: int = 50, timeout: float = CLIENT_TIMEOUT
) -> YahooProvider:
    options = yahoo_client(
        breaker=BreakerSettings(failures=breaker_failures, reset_seconds=60),
        request_timeout_seconds=timeout,
        yahoo_interval="1d",
        yahoo_base_url=service.base_url,
    ).provider_options()
    provider = build_provider("yahoo", "", options)
    assert isinstance(provider, YahooProvider)
    return provider


def assert_nvda_split_day(result) -> None:
    assert list(result.bars["trade_date"].dt.date) == SPLIT_DAY
    assert result.actions["split_ratio"].tolist() == SPLITS_SEEN


def test_429_with_retry_after_waits_as_asked(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(429, {"Retry-After": "1"}))
    result = provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert_nvda_split_day(result)
    assert result.retries == 1
    assert result.backoff_seconds >= 1.0
    first, second, _later_actions = yahoo.chart_calls("NVDA")
    assert second.arrived - first.finished >= 1.0, "the second try came before Retry-After"


def test_429_without_retry_after_backs_off_exponentially(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(429), Fault(429))
    result = provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert_nvda_split_day(result)
    assert result.retries == 2
    assert len(yahoo.chart_calls("NVDA")) == 3 + 1, "three tries, then the later actions"


def test_server_errors_are_retried(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(500), Fault(503))
    result = provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert_nvda_split_day(result)
    assert result.retries == 2


def test_a_timeout_is_retried(yahoo: FakeYahoo) -> None:
    provider = provider_for(yahoo)
    provider.fetch_bars("NVDA", SPLIT_DAY)  # the time-zone lookup, outside the short timeout
    yahoo.fail("NVDA", Fault(delay_seconds=SHORT_TIMEOUT * 4))
    provider.timeout_seconds = SHORT_TIMEOUT
    result = provider.fetch_bars("NVDA", SPLIT_DAY)
    assert_nvda_split_day(result)
    assert result.retries == 1


def test_truncated_json_is_retried(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(truncate=True))
    result = provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert_nvda_split_day(result)
    assert result.retries == 1


def test_persistent_server_errors_end_in_a_clear_failure(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", *[Fault(503)] * FAST_RETRY.attempts)
    with pytest.raises(ProviderError, match=r"gave up after 4 attempt\(s\); .*HTTP 503"):
        provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert len(yahoo.chart_calls("NVDA")) == FAST_RETRY.attempts


def test_a_retry_after_longer_than_we_wait_fails_at_once(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(429, {"Retry-After": "3600"}))
    with pytest.raises(ProviderError, match="asked to wait 3600 s"):
        provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert len(yahoo.chart_calls("NVDA")) == 1


def test_an_unknown_symbol_is_not_retried(yahoo: FakeYahoo) -> None:
    with pytest.raises(ProviderError, match="HTTP 404: No data found, symbol may be delisted"):
        provider_for(yahoo).fetch_bars("ZZZZ", SPLIT_DAY)
    assert len([a for a in yahoo.arrivals if a.symbol == "ZZZZ"]) == 1


def test_other_client_errors_are_not_retried(yahoo: FakeYahoo) -> None:
    yahoo.fail("NVDA", Fault(400, body=b'{"chart":{"error":{"description":"Invalid input"}}}'))
    with pytest.raises(ProviderError, match="HTTP 400: Invalid input"):
        provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert len(yahoo.chart_calls("NVDA")) == 1


def test_an_empty_result_is_a_clear_failure_not_an_empty_success(yahoo: FakeYahoo) -> None:
    name = "chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json"
    empty = json.loads((YAHOO_FIXTURES / name).read_text())["response"]["bodyJson"]
    assert "timestamp" not in recorded(name)
    yahoo.fail("NVDA", Fault(body=json.dumps(empty).encode()))
    with pytest.raises(ProviderError, match="without any bars; nothing is stored"):
        provider_for(yahoo).fetch_bars("NVDA", SPLIT_DAY)
    assert len(yahoo.chart_calls("NVDA")) == 1


def test_the_circuit_breaker_stops_calling_and_says_so(yahoo: FakeYahoo) -> None:
    provider = provider_for(yahoo, breaker_failures=FAST_RETRY.attempts + 1)
    yahoo.fail("NVDA", *[Fault(503)] * FAST_RETRY.attempts)
    yahoo.fail("MSFT", *[Fault(503)] * FAST_RETRY.attempts)
    with pytest.raises(ProviderError, match="gave up after 4 attempt"):
        provider.fetch_bars("NVDA", SPLIT_DAY)
    with pytest.raises(ProviderUnavailableError, match="circuit breaker is open"):
        provider.fetch_bars("MSFT", SPLIT_DAY)
    calls = len(yahoo.arrivals)
    with pytest.raises(ProviderUnavailableError, match="failed 5 requests in a row"):
        provider.fetch_bars("AAPL", [date(2020, 9, 1)])
    assert len(yahoo.arrivals) == calls, "an open breaker makes no request"
