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
  calendar day's level plus a small overnight gap. The day's volume is the ticker's average times
  log-normal noise, higher on days that move more.
- Minute bars (`interval="1m"`) are a Brownian bridge from the day's open to its close with the
  U-shaped intraday volatility and volume of equity markets; their first open and last close are
  the day's open and close, and their volumes share out the day's volume.
- Daily bars (`interval="1d"`, stamped at local midnight like real feeds) are built from the
  day's levels alone, in O(days) without generating minutes: the day's open and close, a high
  and a low drawn from the law of the maximum and minimum of that Brownian bridge, and the day's
  volume. So they are not the summary of the same day's minute bars: they share its open and
  close exactly and its volume up to the rounding of each minute to whole shares (under one
  share per minute), but the minute bars' high and low come from their own sampled path and
  wicks (same scale, other draws).
- Prices are in cents, high >= max(open, close) and low <= min(open, close); volumes are whole
  shares.

Random numbers are counter-based (a hash of the ticker's seed, a stream and the day or minute),
so a day never depends on the other days generated with it and any span costs one vectorised
pass, with no generator per day.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from statistics import NormalDist

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from candle_pipeline.domain.bars import VALUE_COLUMNS, empty_bars
from candle_pipeline.domain.sessions import market_timings
from candle_pipeline.providers.base import FetchResult

SOURCE_NAME = "synthetic"
INTERVALS = ("1m", "1d")
DEFAULT_MIC = "XNYS"

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
# Independent random streams of a ticker: daily steps, overnight gaps, intraday paths, the day's
# volume, and the high and low of daily bars.
STREAM_STEPS = 1
STREAM_GAPS = 2
STREAM_MINUTES = 3
STREAM_DAY_VOLUME = 4
STREAM_DAY_HIGH = 5
STREAM_DAY_LOW = 6
# Minute draws are addressed by (day, minute of the day): no session has more minutes than a day.
MINUTES_PER_DAY = 24 * 60
# Minute draws are normal quantiles at 2**16 equally likely levels, four from each 64-bit hash
# (little-endian on every platform, so every machine reads the same four levels); the draws per
# minute are the step, the high wick, the low wick and the minute's volume.
HASH_DTYPE = np.dtype("<u8")
QUANTILE_DTYPE = np.dtype("<u2")
DRAWS_PER_MINUTE = HASH_DTYPE.itemsize // QUANTILE_DTYPE.itemsize
# SplitMix64 (Steele, Lea and Flood 2014) constants, and 2**-53 to turn 53 bits into [0, 1).
SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
SPLITMIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
UNIT_53 = 2.0**-53
# Building an exchange calendar costs ~0.15 s whatever its span: sessions are computed and cached
# a decade at a time.
CALENDAR_CHUNK_YEARS = 10


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

    @property
    def intraday_variance(self) -> float:
        """Variance of the log price from a session's open to its close."""
        return self.daily_sigma**2 * (1 - OVERNIGHT_VARIANCE_SHARE)


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


def _stream_base(seed: int, stream: int) -> np.uint64:
    """The first counter of (seed, stream): streams start far apart in the 64-bit space."""
    return np.uint64(seed) ^ _splitmix64(np.array([stream], dtype=np.uint64))[0]


def _unit_interval(bits: np.ndarray) -> np.ndarray:
    """The top 53 bits of each hash as a float in the open interval (0, 1)."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * UNIT_53


def indexed_normals(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """Standard normal draws addressed by (seed, stream, index): any slice, same values.

    A counter-based generator (SplitMix64 + Box-Muller), so the draw for one calendar day never
    depends on which other days were generated with it.
    """
    with np.errstate(over="ignore"):
        counters = _stream_base(seed, stream) + index.astype(np.uint64) * np.uint64(2)
        first = _splitmix64(counters)
        second = _splitmix64(counters + np.uint64(1))
    angle = (second >> np.uint64(11)).astype(np.float64) * UNIT_53
    return np.sqrt(-2.0 * np.log(_unit_interval(first))) * np.cos(2.0 * np.pi * angle)


def indexed_uniforms(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """Uniform draws in (0, 1) addressed by (seed, stream, index), like `indexed_normals`."""
    with np.errstate(over="ignore"):
        return _unit_interval(_splitmix64(_stream_base(seed, stream) + index.astype(np.uint64)))


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """The standard normal's quantiles at the midpoints of 2**16 equally likely levels."""
    levels = np.iinfo(QUANTILE_DTYPE).max + 1
    inverse_cdf = np.frompyfunc(NormalDist().inv_cdf, 1, 1)
    return inverse_cdf((np.arange(levels) + 0.5) / levels).astype(np.float64)


def indexed_coarse_normals(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """DRAWS_PER_MINUTE standard normal draws per index, shape (DRAWS_PER_MINUTE, len(index)).

    Addressed like `indexed_normals` at a tenth of its cost per draw (a third of a NumPy
    Generator's): one hash gives four draws, each a table look-up (inverse-transform sampling)
    instead of Box-Muller. The price is resolution: each draw is one of 2**16 equally likely
    normal quantiles, so the tails stop at 4.3 sigma, which minute steps, wicks and volumes do
    not miss.
    """
    with np.errstate(over="ignore"):
        bits = _splitmix64(_stream_base(seed, stream) + index.astype(np.uint64))
    levels = bits.astype(HASH_DTYPE, copy=False).view(QUANTILE_DTYPE).reshape(-1, DRAWS_PER_MINUTE)
    return _normal_quantiles()[levels.T]


def epoch_days(days: Sequence[date]) -> np.ndarray:
    """The distinct `days` in order, as days since EPOCH."""
    ordinals = np.sort(np.fromiter(map(date.toordinal, days), dtype=np.int64, count=len(days)))
    distinct = np.diff(ordinals, prepend=ordinals[:1] - 1) != 0
    return ordinals[distinct] - EPOCH.toordinal()


def _as_datetimes(days: np.ndarray) -> np.ndarray:
    """Days since EPOCH as naive datetime64[ns] midnights (the `trade_date` column)."""
    return (np.datetime64(EPOCH, "D") + days).astype("datetime64[ns]")


def daily_levels(profile: TickerProfile, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) of each of `days` (days since EPOCH): the walk's level the day before (plus
    a gap) and on the day.

    The level's deviation from its trend is the walk minus its trailing REVERSION_DAYS mean,
    which depends only on the last REVERSION_DAYS steps: locally a random walk with the ticker's
    volatility, yet it never wanders off to zero or infinity over the decades covered.
    """
    if days.min() <= REVERSION_DAYS or days.max() >= HORIZON.toordinal() - EPOCH.toordinal():
        raise ValueError(f"synthetic bars exist from {EPOCH} to {HORIZON} only")
    first = int(days.min()) - REVERSION_DAYS - 1
    span = np.arange(first, int(days.max()) + 1)
    sigma = profile.daily_sigma
    walk = np.cumsum(indexed_normals(profile.seed, STREAM_STEPS, span) * sigma)
    running = np.concatenate([[0.0], np.cumsum(walk)])
    position = np.arange(span.size)
    window_start = np.maximum(position - REVERSION_DAYS + 1, 0)
    trailing_mean = (running[position + 1] - running[window_start]) / (position + 1 - window_start)
    years = (span - (REFERENCE_DAY.toordinal() - EPOCH.toordinal())) / CALENDAR_DAYS_PER_YEAR
    log_level = np.log(profile.start_price) + profile.annual_drift * years + walk - trailing_mean
    at = days - first
    gaps = indexed_normals(profile.seed, STREAM_GAPS, days) * sigma
    close = np.exp(log_level[at])
    open_ = np.exp(log_level[at - 1] + gaps * np.sqrt(OVERNIGHT_VARIANCE_SHARE))
    return open_, close


def day_volumes(profile: TickerProfile, days: np.ndarray, day_return: np.ndarray) -> np.ndarray:
    """Shares traded on each of `days` (not rounded), given each day's open-to-close log return."""
    noise = indexed_normals(profile.seed, STREAM_DAY_VOLUME, days) * DAILY_VOLUME_LOG_SPREAD
    move_in_sigmas = np.abs(day_return) / profile.daily_sigma
    return profile.daily_volume * np.exp(noise) * (1 + VOLUME_PER_SIGMA_MOVE * move_in_sigmas)


def bridge_maximum(
    start: np.ndarray, end: np.ndarray, variance: float, uniform: np.ndarray
) -> np.ndarray:
    """The maximum of a Brownian bridge from `start` to `end` with total variance `variance`.

    Drawn from `uniform` by inverting its law, P(max > m) = exp(-2 (m - start) (m - end) /
    variance) for m above both ends. The minimum is minus the maximum of the negated bridge.
    """
    return (start + end + np.sqrt((end - start) ** 2 - 2 * variance * np.log(uniform))) / 2


@dataclass(frozen=True)
class Sessions:
    """The regular sessions of some open days of one exchange, in date order.

    Times are ns since the Unix epoch (UTC); an exchange without a lunch break has its
    `break_start` at the close and a `break_length` of 0.
    """

    days: np.ndarray
    midnight: np.ndarray
    open: np.ndarray
    break_start: np.ndarray
    break_length: np.ndarray
    minutes: np.ndarray

    def select(self, rows: np.ndarray) -> Sessions:
        return Sessions(**{field.name: getattr(self, field.name)[rows] for field in fields(self)})


def open_sessions(mic: str, days: np.ndarray) -> Sessions:
    """The sessions of `mic` on the open days among `days` (distinct days since EPOCH, in order)."""
    if not days.size:
        return Sessions(**{field.name: days for field in fields(Sessions)})
    first, last = (np.datetime64(EPOCH, "D") + days[[0, -1]]).astype(object)
    chunks = [
        _sessions_of_chunk(mic, chunk)
        for chunk in range(
            first.year // CALENDAR_CHUNK_YEARS, last.year // CALENDAR_CHUNK_YEARS + 1
        )
    ]
    every = Sessions(
        **{
            field.name: np.concatenate([getattr(chunk, field.name) for chunk in chunks])
            for field in fields(Sessions)
        }
    )
    return every.select(np.isin(every.days, days))


@functools.lru_cache(maxsize=64)
def _sessions_of_chunk(mic: str, chunk: int) -> Sessions:
    """One calendar computation per exchange and decade, whatever days are asked for."""
    first_year = chunk * CALENDAR_CHUNK_YEARS
    timings = market_timings(
        [mic], date(first_year, 1, 1), date(first_year + CALENDAR_CHUNK_YEARS - 1, 12, 31)
    )
    opened = timings[timings["is_open"]]

    def as_ns(column: str) -> np.ndarray:
        return opened[column].to_numpy(dtype="datetime64[ns]").view("int64")

    close = as_ns("close_utc")
    has_break = opened["break_start_utc"].notna().to_numpy()
    break_start = np.where(has_break, as_ns("break_start_utc"), close)
    break_end = np.where(has_break, as_ns("break_end_utc"), close)
    session_dates = pd.DatetimeIndex(opened["session_date"])
    return Sessions(
        days=(session_dates.to_numpy("datetime64[D]") - np.datetime64(EPOCH, "D")).astype(np.int64),
        midnight=session_dates.tz_localize(_exchange_timezone(mic)).asi8,
        open=as_ns("open_utc"),
        break_start=break_start,
        break_length=break_end - break_start,
        minutes=opened["expected_minute_bars"].to_numpy(dtype="int64"),
    )


@functools.lru_cache(maxsize=16)
def _exchange_timezone(mic: str) -> str:
    return str(xcals.get_calendar(mic).tz)


def _cents(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values / CENT) * CENT, CENT)


@dataclass(frozen=True)
class SyntheticProvider:
    """Synthetic bars at `interval` ("1m" or "1d") on the sessions of exchange `mic`."""

    interval: str = "1m"
    mic: str = DEFAULT_MIC
    name: str = SOURCE_NAME

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(
                f"synthetic bars come at {' or '.join(INTERVALS)}, not {self.interval!r}"
            )

    def fetch_bars(
        self,
        ticker: str,
        days: Sequence[date],
        *,
        after: datetime | None = None,
        as_of: datetime | None = None,
    ) -> FetchResult:
        """Bars of `ticker` on the open days among `days`, in the canonical bar columns.

        The frame is built in canonical form (the test suite holds it to `check_bars`), so
        generating thousands of ticker-days costs no validation pass. Days are made whole:
        `after` and `as_of` are the client's to apply.
        """
        if len(days) == 0:
            return FetchResult(bars=empty_bars(), requests=0)
        bars = daily_bars if self.interval == "1d" else minute_bars
        return FetchResult(bars=bars([ticker], days, self.mic), requests=1)


def daily_bars(
    tickers: Sequence[str], days: Sequence[date], mic: str = DEFAULT_MIC
) -> pd.DataFrame:
    """Daily bars of `tickers` on the open days of `mic` among `days`, ticker by ticker.

    O(days) per ticker: each day's open, high, low, close and volume come from the day's levels
    and three draws of its own (volume, high, low), never from minutes.
    """
    sessions = open_sessions(mic, epoch_days(days))
    if not sessions.days.size or len(tickers) == 0:
        return empty_bars()
    values = [_daily_values(ticker_profile(ticker), sessions.days) for ticker in tickers]
    return _bars_frame(tickers, "1d", _as_datetimes(sessions.days), sessions.midnight, values)


def _daily_values(profile: TickerProfile, days: np.ndarray) -> dict[str, np.ndarray]:
    level_open, level_close = daily_levels(profile, days)
    log_open, log_close = np.log(level_open), np.log(level_close)
    variance = profile.intraday_variance
    up = indexed_uniforms(profile.seed, STREAM_DAY_HIGH, days)
    down = indexed_uniforms(profile.seed, STREAM_DAY_LOW, days)
    open_, close = _cents(level_open), _cents(level_close)
    high = _cents(np.exp(bridge_maximum(log_open, log_close, variance, up)))
    low = _cents(np.exp(-bridge_maximum(-log_open, -log_close, variance, down)))
    return {
        "open": open_,
        "high": np.maximum(high, np.maximum(open_, close)),
        "low": np.minimum(low, np.minimum(open_, close)),
        "close": close,
        "volume": np.round(day_volumes(profile, days, log_close - log_open)),
    }


@dataclass(frozen=True)
class MinuteGrid:
    """The regular minute bars of some sessions, concatenated: each one's day and position."""

    sessions: Sessions
    starts: np.ndarray
    day_of: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, sessions: Sessions) -> MinuteGrid:
        counts = sessions.minutes
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        day_of = np.repeat(np.arange(counts.size), counts)
        return cls(sessions, starts, day_of, np.arange(day_of.size) - starts[day_of])

    @property
    def ends(self) -> np.ndarray:
        return self.starts + self.sessions.minutes - 1

    def timestamps(self) -> np.ndarray:
        """Start of each minute bar (ns since the Unix epoch, UTC), skipping lunch breaks."""
        at = self.sessions.open[self.day_of] + self.position * NANOS_PER_MINUTE
        after_break = at >= self.sessions.break_start[self.day_of]
        return at + after_break * self.sessions.break_length[self.day_of]

    def u_shape(self) -> np.ndarray:
        """Weights over each session's minutes, INTRADAY_U_DEPTH times higher at the edges; mean 1
        per day."""
        counts = self.sessions.minutes
        across = 2 * self.position / np.maximum(counts - 1, 1)[self.day_of] - 1
        weights = 1 + (INTRADAY_U_DEPTH - 1) * across**2
        return weights / (np.add.reduceat(weights, self.starts) / counts)[self.day_of]


def minute_bars(
    tickers: Sequence[str], days: Sequence[date], mic: str = DEFAULT_MIC
) -> pd.DataFrame:
    """Regular-session minute bars of `tickers` on the open days of `mic` among `days`."""
    sessions = open_sessions(mic, epoch_days(days))
    if not sessions.days.size or len(tickers) == 0:
        return empty_bars()
    grid = MinuteGrid.of(sessions)
    values = [_minute_values(ticker_profile(ticker), grid) for ticker in tickers]
    trade_dates = np.repeat(_as_datetimes(sessions.days), sessions.minutes)
    return _bars_frame(tickers, "1m", trade_dates, grid.timestamps(), values)


def _minute_values(profile: TickerProfile, grid: MinuteGrid) -> dict[str, np.ndarray]:
    """Per day a Brownian bridge from its open to its close, U-shaped volatility and volume.

    Every draw is addressed by (ticker, day, minute of the day), so a day's bars do not depend
    on the other days asked for; the arithmetic runs once over all days.
    """
    days, day_of, starts, ends = grid.sessions.days, grid.day_of, grid.starts, grid.ends
    counts = grid.sessions.minutes
    day_open, day_close = daily_levels(profile, days)
    step, high_wick, low_wick, volume_noise = indexed_coarse_normals(
        profile.seed, STREAM_MINUTES, days[day_of] * MINUTES_PER_DAY + grid.position
    )
    shape = grid.u_shape()
    minute_sigma = np.sqrt(profile.intraday_variance * shape / counts[day_of])
    walk = np.cumsum(step * minute_sigma)
    walk -= np.concatenate([[0.0], walk[ends[:-1]]])[day_of]
    day_return = np.log(day_close / day_open)
    progress = (grid.position + 1) / counts[day_of]
    bridge = walk - progress * (walk[ends] - day_return)[day_of]
    close = _cents(day_open[day_of] * np.exp(bridge))
    # The bridge ends on the day's close: set it exactly, free of floating-point noise.
    close[ends] = _cents(day_close)
    open_ = np.empty_like(close)
    open_[1:] = close[:-1]
    open_[starts] = _cents(day_open)
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    wick = minute_sigma * WICK_SIGMAS
    weights = shape * np.exp(volume_noise * MINUTE_VOLUME_LOG_SPREAD)
    share = weights / np.add.reduceat(weights, starts)[day_of]
    return {
        "open": open_,
        "high": np.maximum(_cents(body_high * np.exp(np.abs(high_wick) * wick)), body_high),
        "low": np.minimum(_cents(body_low * np.exp(-np.abs(low_wick) * wick)), body_low),
        "close": close,
        "volume": np.round(day_volumes(profile, days, day_return)[day_of] * share),
    }


def _bars_frame(
    tickers: Sequence[str],
    interval: str,
    trade_dates: np.ndarray,
    timestamps: np.ndarray,
    values: Sequence[dict[str, np.ndarray]],
) -> pd.DataFrame:
    """The canonical bar frame of `tickers` in order, each with the same rows' dates and times.

    Every column is a new array, so the frame takes them as they are (copy=False): a third of
    the cost of letting pandas copy them into consolidated blocks. Text columns are repeated
    rather than filled (`np.full` of an object is several times slower).
    """
    return pd.DataFrame(
        {
            "ticker": np.repeat(np.array(tickers, dtype=object), trade_dates.size),
            "trade_date": np.tile(trade_dates, len(tickers)),
            "interval": np.repeat(
                np.array([interval], dtype=object), trade_dates.size * len(tickers)
            ),
            "ts": pd.DatetimeIndex(
                np.tile(timestamps, len(tickers)).view("datetime64[ns]")
            ).tz_localize("UTC"),
            **{
                column: np.concatenate([each[column] for each in values])
                for column in VALUE_COLUMNS
            },
        },
        copy=False,
    )
