"""The one retry policy and circuit breaker of the market-data client, and what they count.

Every provider request runs as `Resilience.call`: tenacity retries transient failures (HTTP 429 and
5xx, timeouts, cut connections, malformed JSON) with exponential backoff and jitter, waiting at
least as long as a Retry-After header asks; other errors fail at once. Around each attempt a
circuit breaker (pybreaker) counts consecutive transient failures per provider endpoint and, once
open, refuses calls with a message saying so until its reset time has passed.

A request that stays transient past the policy (or is asked to wait longer than the client waits
within a run, or meets an open breaker) raises `RetryLaterError` with the wait the service asked
for: the ticker-day becomes `retry_later` instead of failing the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import dagster as dg
import pybreaker
import tenacity
from pydantic import Field

from candle_pipeline.providers.base import (
    CallStats,
    ProviderUnavailableError,
    RetryLaterError,
    TransientProviderError,
)

T = TypeVar("T")


class RetryPolicy(dg.Config):
    """How often and how patiently a failed request is tried again: attempts per request,
    exponential backoff with jitter between them, and the longest Retry-After waited for within
    a run before the ticker-day is left for a later retry."""

    attempts: int = Field(default=5, ge=1)
    backoff_initial_seconds: float = Field(default=1.0, ge=0)
    backoff_max_seconds: float = Field(default=60.0, ge=0)
    backoff_jitter_seconds: float = Field(default=1.0, ge=0)
    max_retry_after_seconds: float = Field(default=300.0, ge=0)


class BreakerSettings(dg.Config):
    """Consecutive failed requests before a provider is not called any more, and the seconds
    before one trial request is let through again."""

    failures: int = Field(default=8, ge=1)
    reset_seconds: float = Field(default=300.0, ge=0)


_BREAKERS: dict[tuple[str, str, BreakerSettings], pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(
    provider: str, endpoint: str, settings: BreakerSettings
) -> pybreaker.CircuitBreaker:
    """The process's circuit breaker of one provider endpoint, shared by every run in it."""
    key = (provider, endpoint, settings)
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(key)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=settings.failures,
                reset_timeout=settings.reset_seconds,
                exclude=[lambda error: not isinstance(error, TransientProviderError)],
                name=f"{provider} {endpoint}",
            )
            _BREAKERS[key] = breaker
        return breaker


class _WaitHonouringRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but never shorter than the service's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.backoff_initial_seconds,
            max=policy.backoff_max_seconds,
            jitter=policy.backoff_jitter_seconds,
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        retry_after = _retry_after(retry_state)
        return backoff if retry_after is None else max(backoff, retry_after)


class _StopWhenRetryAfterTooLong(tenacity.stop.stop_base):
    def __init__(self, limit: float) -> None:
        self._limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        retry_after = _retry_after(retry_state)
        return retry_after is not None and retry_after > self._limit


def _retry_after(retry_state: tenacity.RetryCallState) -> float | None:
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    return error.retry_after if isinstance(error, TransientProviderError) else None


class Resilience:
    """Retries and circuit breaking for one provider endpoint."""

    def __init__(
        self,
        provider: str,
        endpoint: str,
        policy: RetryPolicy,
        breaker: BreakerSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self._breaker = breaker_for(provider, endpoint, breaker)
        self._sleep = sleep

    def call(self, what: str, request: Callable[[], T], stats: CallStats) -> T:
        """`request()` under the retry policy and the circuit breaker; `what` names it in errors."""

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            stats.retries += 1
            stats.backoff_seconds += retry_state.upcoming_sleep

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts)
            | _StopWhenRetryAfterTooLong(self.policy.max_retry_after_seconds),
            wait=_WaitHonouringRetryAfter(self.policy),
            retry=tenacity.retry_if_exception_type(TransientProviderError),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._through_breaker, request)
        except pybreaker.CircuitBreakerError as error:
            raise ProviderUnavailableError(
                self._open_message(what, error), self._breaker.reset_timeout
            ) from None
        except TransientProviderError as error:
            attempts = stats.retries + 1
            if (
                error.retry_after is not None
                and error.retry_after > self.policy.max_retry_after_seconds
            ):
                raise RetryLaterError(
                    f"{what}: {error}; {self.provider} asked to wait {error.retry_after:.0f} s "
                    f"(Retry-After), longer than the {self.policy.max_retry_after_seconds:.0f} s "
                    "this client waits in a run",
                    error.retry_after,
                ) from error
            raise RetryLaterError(
                f"{what}: gave up after {attempts} attempt(s); last error: {error}",
                error.retry_after or self.policy.backoff_max_seconds,
            ) from error

    def _through_breaker(self, request: Callable[[], T]) -> T:
        return self._breaker.call(request)

    def _open_message(self, what: str, error: pybreaker.CircuitBreakerError) -> str:
        return (
            f"{what}: {self.provider} failed {self._breaker.fail_max} requests in a row, so its "
            f"circuit breaker is open and it is not being called ({error}); one trial request "
            f"is let through {self._breaker.reset_timeout:.0f} s after it opened"
        )
