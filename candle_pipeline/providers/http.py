"""The HTTP layer of the providers that speak to their service through `requests` (Polygon, and
every exchange ccxt reaches): each of their requests passes through `ProviderSession`.

- replay: the request is answered from recorded exchanges, never the network;
- otherwise: one token is taken from the provider's rate limiter, then the request is sent (to
  its URL, or with its scheme and host replaced by `base_url`: a mirror, a test's fake service),
  with the client's timeout;
- HTTP 429 and 5xx, timeouts and cut connections become `TransientProviderError` (with the
  service's Retry-After), which the retry policy retries; 418, an exchange's ban for not
  slowing down after 429s, becomes `RetryLaterError` at once (asking again extends a ban).
  Every other answer goes back to the caller (the provider, or ccxt), which reads it.

Each request is counted in the `CallStats` of the fetch in progress (`counting`), with the
seconds spent waiting for a token. The Yahoo session (curl_cffi, for yfinance) shares the
answer checks below.
"""

from __future__ import annotations

import contextvars
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from candle_pipeline.providers.base import (
    CallStats,
    ProviderError,
    RetryLaterError,
    TransientProviderError,
)
from candle_pipeline.providers.rate_limit import RateLimiter

FIRST_CLIENT_ERROR = 400
TOO_MANY_REQUESTS = 429
BANNED = 418
FIRST_SERVER_ERROR = 500
# How long to wait after a ban that names no Retry-After (Binance bans for 2 minutes to 3 days).
DEFAULT_BAN_SECONDS = 120.0
HTTP_REASONS = {200: "OK", 404: "Not Found"}


@dataclass(frozen=True)
class Answer:
    """A recorded (or made-up) HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class Recordings(Protocol):
    """Recorded exchanges of one provider: the answer to a request, or a `ProviderError` naming
    what is recorded."""

    def answer(self, url: str) -> Answer: ...


_STATS: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar(
    "provider_call_stats", default=None
)


@contextmanager
def counting(stats: CallStats) -> Iterator[None]:
    """Count the requests made inside the block (in this thread or task) in `stats`."""
    token = _STATS.set(stats)
    try:
        yield
    finally:
        _STATS.reset(token)


class ProviderSession(requests.Session):
    """A `requests` session that sends every request along the provider's route."""

    def __init__(
        self,
        provider: str,
        timeout_seconds: float,
        limiter: RateLimiter | None = None,
        base_url: str | None = None,
        replay: Recordings | None = None,
    ) -> None:
        super().__init__()
        self.trust_env = False
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self.limiter = limiter
        self.base_url = base_url
        self.replay = replay

    def request(self, method, url, *args, **kwargs):
        stats = _STATS.get()
        if stats is None:
            raise ProviderError(
                f"a {self.provider} request ({shown_url(str(url))}) outside a fetch: every "
                "request must go through MarketDataResource"
            )
        target = redirected(str(url), self.base_url)
        if self.replay is not None:
            stats.requests += 1
            asked = requests.Request(method, target, params=kwargs.get("params")).prepare().url
            return checked(_response(self.replay.answer(asked), asked), self.provider)
        if self.limiter is not None:
            stats.throttled_seconds += self.limiter.acquire()
        stats.requests += 1
        kwargs["timeout"] = self.timeout_seconds
        try:
            response = super().request(method, target, *args, **kwargs)
        except requests.RequestException as error:
            raise TransientProviderError(
                f"{method} {shown_url(target)}: {type(error).__name__}: {error}"
            ) from error
        return checked(response, self.provider)


def checked(response: requests.Response, provider: str) -> requests.Response:
    """The response, or the error its status stands for (see the module docstring)."""
    error = throttling_error(response.status_code, response.headers, response.url, provider)
    if error is not None:
        raise error
    return response


def throttling_error(
    status: int, headers: Mapping[str, str], url: str, provider: str
) -> ProviderError | None:
    """The error an answer asking us to wait or to come back stands for, if it is one: 429 and
    5xx are transient (with the Retry-After asked for), 418 is a ban to wait out."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    asked = f", Retry-After {retry_after:.0f} s" if retry_after is not None else ""
    if status == BANNED:
        wait = retry_after if retry_after is not None else DEFAULT_BAN_SECONDS
        return RetryLaterError(
            f"{shown_url(url)} answered HTTP {status}: {provider} banned this client for "
            f"sending too many requests{asked}; not asked again for {wait:.0f} s",
            wait,
        )
    if status == TOO_MANY_REQUESTS or status >= FIRST_SERVER_ERROR:
        return TransientProviderError(
            f"{shown_url(url)} answered HTTP {status}{asked}", retry_after=retry_after
        )
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent/garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def redirected(url: str, base_url: str | None) -> str:
    """`url` with its scheme and host (and a path prefix) taken from `base_url`, when set."""
    if base_url is None:
        return url
    parts, base = urlsplit(url), urlsplit(base_url)
    return urlunsplit(
        (base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, "")
    )


def shown_url(url: str) -> str:
    """The URL without its query (which may hold a crumb, a cursor or a key), for messages."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _response(answer: Answer, url: str) -> requests.Response:
    """The answer as `requests` builds a response from the wire."""
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(answer.body),
        headers=answer.headers,
        status=answer.status,
        reason=HTTP_REASONS.get(answer.status, ""),
        preload_content=False,
    )
    request = requests.Request("GET", url).prepare()
    return requests.adapters.HTTPAdapter().build_response(request, raw)
