"""The token bucket of each market-data provider, shared by every process on one warehouse.

pyrate-limiter supplies the algorithm (`TokenBucket`: a bucket of `burst` tokens refilled at the
configured rate) and the blocking `Limiter`; its state lives in the warehouse table
`provider_rate_limits`, one row per provider, read and advanced under a row lock. So the rate holds
across all concurrent runs and processes, not just inside one of them.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from pyrate_limiter import Duration, Limiter, Rate, StateBucket, TokenBucket, WallClock
from pyrate_limiter.abstracts import StateStore
from sqlalchemy.dialects import postgresql

from candle_pipeline.warehouse.tables import provider_rate_limits

MILLISECONDS_PER_MINUTE = int(Duration.MINUTE)
RATE_SCALE = 1000


class PostgresStateStore(StateStore):
    """One provider's bucket state in a warehouse row; `check` is one locking transaction."""

    is_async = False
    # Processes compare timestamps, so the clock must be the same for all: wall-clock epoch ms.
    default_clock = WallClock()

    def __init__(self, engine: sa.Engine, bucket: str) -> None:
        self._engine = engine
        self._bucket = bucket

    def check(self, algorithm, rates, now, weight):
        table = provider_rate_limits
        with self._engine.begin() as connection:
            connection.execute(
                postgresql.insert(table)
                .values(
                    bucket=self._bucket,
                    state=list(algorithm.initial(rates)),
                    updated_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=[table.c.bucket])
            )
            stored = connection.execute(
                sa.select(table.c.state).where(table.c.bucket == self._bucket).with_for_update()
            ).scalar_one()
            state = tuple(stored) if len(stored) == len(rates) else algorithm.initial(rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            if new_state != state:
                connection.execute(
                    sa.update(table)
                    .where(table.c.bucket == self._bucket)
                    .values(state=list(new_state), updated_at=datetime.now(UTC))
                )
        return decision

    def read(self, algorithm, rates):
        table = provider_rate_limits
        with self._engine.connect() as connection:
            stored = connection.execute(
                sa.select(table.c.state).where(table.c.bucket == self._bucket)
            ).scalar_one_or_none()
        return tuple(stored) if stored and len(stored) == len(rates) else algorithm.initial(rates)

    def reset(self) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sa.delete(provider_rate_limits).where(provider_rate_limits.c.bucket == self._bucket)
            )


class RateLimiter:
    """Blocks until the provider's bucket has a token; reports how long it waited."""

    def __init__(self, engine: sa.Engine, bucket: str, per_minute: float, burst: int) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        # pyrate's Rate counts whole requests per interval; counting per 1,000 minutes keeps
        # fractional rates (0.5 a minute) exact.
        rate = Rate(
            round(per_minute * RATE_SCALE), RATE_SCALE * MILLISECONDS_PER_MINUTE, burst=burst
        )
        self.bucket = bucket
        self.per_minute = per_minute
        self.burst = burst
        self._limiter = Limiter(
            StateBucket([rate], algorithm=TokenBucket(), store=PostgresStateStore(engine, bucket))
        )

    def acquire(self) -> float:
        """Take one token, waiting as long as needed; returns the seconds waited."""
        started = time.monotonic()
        self._limiter.try_acquire(self.bucket)
        return time.monotonic() - started


_LIMITERS: dict[tuple[str, str, float, int], RateLimiter] = {}
_LOCK = threading.Lock()


def limiter_for(engine: sa.Engine, bucket: str, per_minute: float, burst: int) -> RateLimiter:
    """The process's limiter of `bucket` on this warehouse (its state is in the warehouse)."""
    key = (str(engine.url), bucket, per_minute, burst)
    with _LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = RateLimiter(engine, bucket, per_minute, burst)
            _LIMITERS[key] = limiter
        return limiter
