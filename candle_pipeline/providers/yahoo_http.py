"""The HTTP session yfinance uses: every request to Yahoo passes through here.

yfinance keeps one process-wide session (its `YfData` singleton) and accepts any curl_cffi or
requests Session. We hand it `YahooSession`, a curl_cffi Session (Chrome impersonation, as
yfinance prefers) whose `request` consults the *route* of the fetch in progress (a context
variable, so concurrent fetches in threads keep theirs apart):

- replay: the request is answered from recorded exchanges, never the network;
- otherwise: one token is taken from the provider's rate limiter, the request is sent (to Yahoo,
  or to `base_url` when set: a mirror, a recording proxy, a test's fake service), and HTTP 429,
  5xx, timeouts and cut connections become `TransientProviderError` (with Retry-After), which the
  retry policy retries. Other answers go back to yfinance, which parses them.

Each request is counted in the route's `CallStats`, with the seconds spent waiting for a token.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from curl_cffi import requests as curl_requests
from curl_cffi.requests.exceptions import RequestException

from candle_pipeline.providers.base import CallStats, ProviderError, TransientProviderError
from candle_pipeline.providers.http import (
    FIRST_CLIENT_ERROR,
    HTTP_REASONS,
    redirected,
    shown_url,
    throttling_error,
)
from candle_pipeline.providers.rate_limit import RateLimiter
from candle_pipeline.providers.replay import CHART_PATH, RecordedExchanges

YAHOO_DOMAIN = "yahoo.com"
AUTH_RENEWAL_STATUSES = (401, 403)
ERROR_BODY_CHARS = 200


@dataclass(frozen=True)
class Route:
    """Where the requests of one fetch go, and what they are counted against."""

    stats: CallStats
    timeout_seconds: float
    limiter: RateLimiter | None = None
    base_url: str | None = None
    replay: RecordedExchanges | None = None


_ROUTE: contextvars.ContextVar[Route | None] = contextvars.ContextVar("yahoo_route", default=None)


@contextmanager
def routed(route: Route) -> Iterator[None]:
    """Send the Yahoo requests made inside the block along `route`."""
    token = _ROUTE.set(route)
    try:
        yield
    finally:
        _ROUTE.reset(token)


class YahooSession(curl_requests.Session):
    """The session handed to yfinance; see the module docstring."""

    def __init__(self) -> None:
        super().__init__(impersonate="chrome")

    def request(self, method, url, *args, **kwargs):
        route = _ROUTE.get()
        if route is None:
            raise ProviderError(
                f"a Yahoo request ({urlsplit(str(url)).path}) outside the market-data client: "
                "every request must go through MarketDataResource"
            )
        if route.replay is not None:
            route.stats.requests += 1
            return _checked(_replayed(route.replay, str(url), kwargs.get("params")), str(url))
        if route.limiter is not None:
            route.stats.throttled_seconds += route.limiter.acquire()
        route.stats.requests += 1
        target = _redirected(str(url), route.base_url)
        kwargs["timeout"] = route.timeout_seconds
        try:
            response = super().request(method, target, *args, **kwargs)
        except RequestException as error:
            raise TransientProviderError(
                f"{method} {shown_url(target)}: {type(error).__name__}: {error}"
            ) from error
        return _checked(response, target)


def _checked(response: curl_requests.Response, url: str) -> curl_requests.Response:
    """The response, or the error it stands for.

    429 and 5xx are transient. 401 and 403 go back to yfinance, which renews its cookie and
    crumb once (Yahoo's way of saying the crumb expired). Any other 4xx fails at once, with
    Yahoo's own explanation, and is never retried.
    """
    status = response.status_code
    throttled = throttling_error(status, response.headers, url, "Yahoo")
    if throttled is not None:
        raise throttled
    if status >= FIRST_CLIENT_ERROR and status not in AUTH_RENEWAL_STATUSES:
        raise ProviderError(f"{shown_url(url)} answered HTTP {status}: {_explanation(response)}")
    if status < FIRST_CLIENT_ERROR and CHART_PATH in urlsplit(url).path:
        problem = chart_shape_problem(response.content)
        if problem is not None:
            raise ProviderError(f"{shown_url(url)}: Yahoo's chart answer is malformed: {problem}")
    return response


def chart_shape_problem(content: bytes) -> str | None:
    """What is wrong with the shape of a chart answer, if anything: every series of prices,
    volumes and adjusted closes must have one value per timestamp.

    Unreadable JSON is left to yfinance's parser (and reported as malformed JSON there).
    """
    try:
        results = json.loads(content)["chart"]["result"] or []
    except (ValueError, TypeError, KeyError):
        return None
    for result in results:
        stamps = len(result.get("timestamp") or [])
        indicators = result.get("indicators") or {}
        for group in ("quote", "adjclose"):
            for series in indicators.get(group) or []:
                for name, values in series.items():
                    if isinstance(values, list) and len(values) != stamps:
                        return (
                            f"{len(values)} '{name}' value(s) for {stamps} timestamp(s); "
                            "nothing is stored"
                        )
    return None


def _explanation(response: curl_requests.Response) -> str:
    """Yahoo's error description from a JSON error body, else the start of the body."""
    try:
        body = json.loads(response.content)
        error = next(v.get("error") for v in body.values() if isinstance(v, dict))
        return str(error["description"])
    except (ValueError, TypeError, KeyError, AttributeError, StopIteration):
        return response.content[:ERROR_BODY_CHARS].decode("utf-8", "replace") or "(no body)"


def _redirected(url: str, base_url: str | None) -> str:
    """`url` on `base_url` when it is a Yahoo URL and a base URL is set."""
    if not (urlsplit(url).hostname or "").endswith(YAHOO_DOMAIN):
        return url
    return redirected(url, base_url)


def _replayed(
    replay: RecordedExchanges, url: str, params: dict[str, object] | None
) -> curl_requests.Response:
    answer = replay.answer(url, params)
    response = curl_requests.Response()
    response.url = url
    response.status_code = answer.status
    response.reason = HTTP_REASONS.get(answer.status, "")
    response.ok = answer.status < FIRST_CLIENT_ERROR
    response.headers = curl_requests.Headers(answer.headers)
    response.content = answer.body
    return response
