"""The `synthetic` provider: made-up but realistic bars for any ticker and day, for scale tests.

NOT market data. Every bar it returns is stamped `source = "synthetic"`; use it for benchmarks,
load tests and demos of scale, never for research.

What it produces, deterministically (the same ticker and day always give the same bars, whatever
else is asked in the same call):
- Sessions follow the exchange's real calendar (`domain.sessions.market_timings`): no bars on
  weekends and holidays, shorter sessions on early closes, no bars in lunch breaks.
- Each ticker draws its own profile from a seed derived from its symbol: a reference price, an
  annual volatility, a drift and an average daily volume.
- The daily close follows a random walk in log price over calendar days around a slow trend (so
  weekend gaps exist and prices stay plausible from 1970 to 2100); the open is the previous
  calendar day's level plus a small overnight gap.
- Minute bars (`interval="1m"`) are a Brownian bridge from the day's open to its close with the
  U-shaped intraday volatility and volume of equity markets; their first open and last close are
  the day's open and close. Daily bars (`interval="1d"`, stamped at local midnight like real
  feeds) summarise the same day's minute bars: they equal their 1d candle.
- Prices are in cents, high >= max(open, close) and low <= min(open, close); volumes are whole
  shares.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from candle_pipeline.domain.bars import VALUE_COLUMNS, empty_bars
from candle_pipeline.domain.sessions import market_timings
from candle_pipeline.providers.base import FetchResult

SOURCE_NAME = "synthetic"
INTERVALS = ("1m", "1d")

# The price path of every ticker is defined from EPOCH to HORIZON (exclusive); its trend passes
# through the ticker's reference price on REFERENCE_DAY, and deviations from the trend revert over
# about REVERSION_DAYS (which bounds them to tens of percent, as for real equities).
EPOCH = date(1970, 1, 1)
HORIZON = date(2100, 1, 1)
REFERENCE_DAY = date(2015, 1, 1)
REVERSION_DAYS = 250
CALENDAR_DAYS_PER_YEAR = 365.25
# Ticker profiles: log-normal reference price, uniform annual volatility and drift, log-uniform
# average daily volume (shares).
MEDIAN_START_PRICE = 60.0
START_PRICE_LOG_SPREAD = 0.8
MIN_START_PRICE = 5.0
ANNUAL_VOLATILITY_RANGE = (0.15, 0.55)
ANNUAL_DRIFT_RANGE = (0.0, 0.08)
DAILY_VOLUME_LOG10_RANGE = (5.5, 7.5)
# Day to day: the share of a day's variance that happens overnight (the open gap), how much the
# day's volume varies, and how strongly it rises with the size of the day's move.
OVERNIGHT_VARIANCE_SHARE = 0.2
DAILY_VOLUME_LOG_SPREAD = 0.3
VOLUME_PER_SIGMA_MOVE = 0.25
# Intraday: the U shape of volatility and volume (weight at the open and close relative to
# midday), the log-normal noise of minute volumes, and how far highs and lows reach beyond the
# open/close of a bar in units of that bar's volatility.
INTRADAY_U_DEPTH = 2.0
MINUTE_VOLUME_LOG_SPREAD = 0.5
WICK_SIGMAS = 0.6
CENT = 0.01
NANOS_PER_MINUTE = 60 * 1_000_000_000
# Independent random streams of a ticker: daily steps, overnight gaps, intraday paths.
STREAM_STEPS = 1
STREAM_GAPS = 2
STREAM_MINUTES = 3
# Normal draws per minute: the step, the high wick, the low wick, the day's volume, the minute's.
DRAWS_PER_MINUTE = 5
# SplitMix64 (Steele, Lea and Flood 2014) constants, and 2**-53 to turn 53 bits into [0, 1).
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
UNIT_53 = 2.0**-53


@dataclass(frozen=True)
class TickerProfile:
    seed: int
    start_price: float
    annual_volatility: float
    annual_drift: float
    daily_volume: float

    @property
    def daily_sigma(self) -> float:
        """Standard deviation of one calendar day's log return."""
        return self.annual_volatility / np.sqrt(CALENDAR_DAYS_PER_YEAR)


def ticker_seed(ticker: str) -> int:
    """A stable 63-bit seed for `ticker` (unlike hash(), the same in every process)."""
    digest = hashlib.blake2b(ticker.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@functools.lru_cache(maxsize=4096)
def ticker_profile(ticker: str) -> TickerProfile:
    seed = ticker_seed(ticker)
    rng = np.random.default_rng([seed, 0])
    start = MEDIAN_START_PRICE * np.exp(rng.normal(0.0, START_PRICE_LOG_SPREAD))
    return TickerProfile(
        seed=seed,
        start_price=float(max(start, MIN_START_PRICE)),
        annual_volatility=float(rng.uniform(*ANNUAL_VOLATILITY_RANGE)),
        annual_drift=float(rng.uniform(*ANNUAL_DRIFT_RANGE)),
        daily_volume=float(10 ** rng.uniform(*DAILY_VOLUME_LOG10_RANGE)),
    )


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser: a well-mixed 64-bit hash of each value (wrapping arithmetic)."""
    mixed = values * np.uint64(SPLITMIX_GAMMA)
    mixed ^= mixed >> np.uint64(30)
    mixed *= np.uint64(SPLITMIX_MULTIPLIERS[0])
    mixed ^= mixed >> np.uint64(27)
    mixed *= np.uint64(SPLITMIX_MULTIPLIERS[1])
    mixed ^= mixed >> np.uint64(31)
    return mixed


def indexed_normals(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """Standard normal draws addressed by (seed, stream, index): any slice, same values.

    A counter-based generator (SplitMix64 + Box-Muller), so the draw for one calendar day never
    depends on which other days were generated with it.
    """
    with np.errstate(over="ignore"):
        base = np.uint64(seed) ^ _splitmix64(np.array([stream], dtype=np.uint64))[0]
        counters = base + index.astype(np.uint64) * np.uint64(2)
        first = _splitmix64(counters)
        second = _splitmix64(counters + np.uint64(1))
    uniform = ((first >> np.uint64(11)).astype(np.float64) + 0.5) * UNIT_53
    angle = (second >> np.uint64(11)).astype(np.float64) * UNIT_53
    return np.sqrt(-2.0 * np.log(uniform)) * np.cos(2.0 * np.pi * angle)


def daily_levels(profile: TickerProfile, days: Sequence[date]) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) of each day: the walk's level the day before (plus a gap) and on the day.

    The level's deviation from its trend is the walk minus its trailing REVERSION_DAYS mean,
    which depends only on the last REVERSION_DAYS steps: locally a random walk with the ticker's
    volatility, yet it never wanders off to zero or infinity over the decades covered.
    """
    ordinals = np.array([day.toordinal() for day in days]) - EPOCH.toordinal()
    if (
        ordinals.min() <= REVERSION_DAYS
        or ordinals.max() >= HORIZON.toordinal() - EPOCH.toordinal()
    ):
        raise ValueError(f"synthetic bars exist from {EPOCH} to {HORIZON} only")
    first = int(ordinals.min()) - REVERSION_DAYS - 1
    span = np.arange(first, int(ordinals.max()) + 1)
    sigma = profile.daily_sigma
    walk = np.cumsum(indexed_normals(profile.seed, STREAM_STEPS, span) * sigma)
    running = np.concatenate([[0.0], np.cumsum(walk)])
    position = np.arange(span.size)
    window_start = np.maximum(position - REVERSION_DAYS + 1, 0)
    trailing_mean = (running[position + 1] - running[window_start]) / (position + 1 - window_start)
    years = (span - (REFERENCE_DAY.toordinal() - EPOCH.toordinal())) / CALENDAR_DAYS_PER_YEAR
    log_level = np.log(profile.start_price) + profile.annual_drift * years + walk - trailing_mean
    at = ordinals - first
    gaps = indexed_normals(profile.seed, STREAM_GAPS, ordinals) * sigma
    close = np.exp(log_level[at])
    open_ = np.exp(log_level[at - 1] + gaps * np.sqrt(OVERNIGHT_VARIANCE_SHARE))
    return open_, close


def session_minutes(mic: str, first: date, last: date) -> dict[date, np.ndarray]:
    """Start times (ns since the Unix epoch, UTC) of the regular minute bars of each open day."""
    by_day: dict[date, np.ndarray] = {}
    for year in range(first.year, last.year + 1):
        by_day.update(
            (day, minutes)
            for day, minutes in _session_minutes_of_year(mic, year).items()
            if first <= day <= last
        )
    return by_day


@functools.lru_cache(maxsize=64)
def _session_minutes_of_year(mic: str, year: int) -> dict[date, np.ndarray]:
    """One calendar computation per exchange and year, whatever days are asked for."""
    timings = market_timings([mic], date(year, 1, 1), date(year, 12, 31))
    opened = timings[timings["is_open"]]
    as_ns = {
        column: opened[column].to_numpy(dtype="datetime64[ns]").view("int64")
        for column in ("open_utc", "close_utc", "break_start_utc", "break_end_utc")
    }
    has_break = opened["break_start_utc"].notna().to_numpy()
    by_day = {}
    for row, day in enumerate(opened["session_date"].dt.date):
        minutes = np.arange(
            as_ns["open_utc"][row], as_ns["close_utc"][row], NANOS_PER_MINUTE, dtype="int64"
        )
        if has_break[row]:
            in_break = (minutes >= as_ns["break_start_utc"][row]) & (
                minutes < as_ns["break_end_utc"][row]
            )
            minutes = minutes[~in_break]
        by_day[day] = minutes
    return by_day


@functools.lru_cache(maxsize=16)
def _exchange_timezone(mic: str) -> str:
    return str(xcals.get_calendar(mic).tz)


@functools.lru_cache(maxsize=65536)
def _local_midnight_ns(timezone: str, day: date) -> int:
    """The start of `day` in `timezone`, as ns since the Unix epoch."""
    return pd.Timestamp(day).tz_localize(timezone).value


@functools.lru_cache(maxsize=64)
def _u_shape(count: int) -> np.ndarray:
    """Weights over a session's minutes, INTRADAY_U_DEPTH times higher at the edges; mean 1."""
    position = np.linspace(-1.0, 1.0, count)
    weights = 1 + (INTRADAY_U_DEPTH - 1) * position**2
    return weights / weights.mean()


def _cents(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values / CENT) * CENT, CENT)


@dataclass(frozen=True)
class SyntheticProvider:
    """Synthetic bars at `interval` ("1m" or "1d") on the sessions of exchange `mic`."""

    interval: str = "1m"
    mic: str = "XNYS"
    name: str = SOURCE_NAME

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(
                f"synthetic bars come at {' or '.join(INTERVALS)}, not {self.interval!r}"
            )

    def fetch_bars(self, ticker: str, days: Sequence[date]) -> FetchResult:
        """Bars of `ticker` on the open days among `days`, in the canonical bar columns.

        The frame is built in canonical form (the test suite holds it to `check_bars`), so
        generating thousands of ticker-days costs no validation pass.
        """
        wanted = sorted(set(days))
        if not wanted:
            return FetchResult(bars=empty_bars(), requests=0)
        minutes_by_day = session_minutes(self.mic, wanted[0], wanted[-1])
        open_days = [day for day in wanted if day in minutes_by_day]
        if not open_days:
            return FetchResult(bars=empty_bars(), requests=1)
        profile = ticker_profile(ticker)
        path = minute_path(profile, open_days, [minutes_by_day[day] for day in open_days])
        if self.interval == "1d":
            bars = _daily_bars(ticker, path, _exchange_timezone(self.mic))
        else:
            bars = _minute_bars(ticker, path)
        return FetchResult(bars=bars, requests=1)


@dataclass(frozen=True)
class MinutePath:
    """Regular-session minute bars of several days, concatenated; `starts` indexes each day."""

    days: Sequence[date]
    starts: np.ndarray
    counts: np.ndarray
    minutes: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def minute_path(
    profile: TickerProfile, days: Sequence[date], minutes: Sequence[np.ndarray]
) -> MinutePath:
    """Per day a Brownian bridge from its open to its close, U-shaped volatility and volume.

    Each day draws from its own generator (seeded by ticker and day), so a day's bars do not
    depend on the other days asked for; the arithmetic runs once over all days.
    """
    counts = np.array([len(day_minutes) for day_minutes in minutes])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    day_of = np.repeat(np.arange(len(days)), counts)
    position = np.arange(day_of.size) - starts[day_of]
    day_open, day_close = daily_levels(profile, days)
    draws = np.concatenate(
        [
            np.random.default_rng([profile.seed, STREAM_MINUTES, day.toordinal()]).standard_normal(
                (DRAWS_PER_MINUTE, count)
            )
            for day, count in zip(days, counts, strict=True)
        ],
        axis=1,
    )
    shape = np.concatenate([_u_shape(int(count)) for count in counts])
    intraday_variance = profile.daily_sigma**2 * (1 - OVERNIGHT_VARIANCE_SHARE)
    minute_sigma = np.sqrt(intraday_variance * shape / counts[day_of])
    walk = np.cumsum(draws[0] * minute_sigma)
    walk -= np.concatenate([[0.0], walk[starts[1:] - 1]])[day_of]
    day_return = np.log(day_close / day_open)
    progress = (position + 1) / counts[day_of]
    ends = starts + counts - 1
    bridge = walk - progress * (walk[ends] - day_return)[day_of]
    close = _cents(day_open[day_of] * np.exp(bridge))
    open_ = np.empty_like(close)
    open_[1:] = close[:-1]
    open_[starts] = _cents(day_open)
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    wick = minute_sigma * WICK_SIGMAS
    move_in_sigmas = np.abs(day_return) / profile.daily_sigma
    day_volume = (
        profile.daily_volume
        * np.exp(draws[3, starts] * DAILY_VOLUME_LOG_SPREAD)
        * (1 + VOLUME_PER_SIGMA_MOVE * move_in_sigmas)
    )
    weights = shape * np.exp(draws[4] * MINUTE_VOLUME_LOG_SPREAD)
    share = weights / np.add.reduceat(weights, starts)[day_of]
    return MinutePath(
        days=days,
        starts=starts,
        counts=counts,
        minutes=np.concatenate(minutes),
        open=open_,
        high=np.maximum(_cents(body_high * np.exp(np.abs(draws[1]) * wick)), body_high),
        low=np.minimum(_cents(body_low * np.exp(-np.abs(draws[2]) * wick)), body_low),
        close=close,
        volume=np.round(day_volume[day_of] * share),
    )


def _minute_bars(ticker: str, path: MinutePath) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": np.repeat(np.array(path.days, dtype="datetime64[ns]"), path.counts),
            "interval": "1m",
            "ts": pd.to_datetime(path.minutes, utc=True),
            **{column: getattr(path, column) for column in VALUE_COLUMNS},
        }
    )


def _daily_bars(ticker: str, path: MinutePath, timezone: str) -> pd.DataFrame:
    """One bar per session summarising its minutes, stamped at local midnight like real feeds."""
    midnights = np.array([_local_midnight_ns(timezone, day) for day in path.days], dtype="int64")
    return pd.DataFrame(
        {
            "ticker": ticker,
            "trade_date": np.array(path.days, dtype="datetime64[ns]"),
            "interval": "1d",
            "ts": pd.to_datetime(midnights, utc=True),
            "open": path.open[path.starts],
            "high": np.maximum.reduceat(path.high, path.starts),
            "low": np.minimum.reduceat(path.low, path.starts),
            "close": path.close[path.starts + path.counts - 1],
            "volume": np.add.reduceat(path.volume, path.starts),
        }
    )
