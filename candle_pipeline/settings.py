"""Every setting of candle-pipeline: read from the environment once, validated, in one place.

Tunable constants live here too, so no function hides a number a user might want to change.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from candle_pipeline.domain.exchanges import UnknownExchangeError, validate_mic

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
SAMPLE_DATA_DIR = PACKAGE_DIR / "data" / "sample"
SP500_CONSTITUENTS = PACKAGE_DIR / "data" / "universe" / "sp500_constituents.csv"

ENV_DATABASE_URL = "CANDLE_DATABASE_URL"
ENV_DAGSTER_DATABASE_URL = "CANDLE_DAGSTER_DATABASE_URL"
ENV_SOURCE = "CANDLE_SOURCE"
ENV_CSV_DIR = "CANDLE_CSV_DIR"
ENV_STATE_DIR = "CANDLE_STATE_DIR"
ENV_PARTITION_START = "CANDLE_PARTITION_START"
ENV_DEFAULT_EXCHANGE = "CANDLE_DEFAULT_EXCHANGE"
ENV_DAGSTER_HOME = "DAGSTER_HOME"
ENV_LOG_LEVEL = "CANDLE_LOG_LEVEL"
ENV_EXCHANGES = "CANDLE_EXCHANGES"
ENV_WAREHOUSE_SCHEMA = "CANDLE_WAREHOUSE_SCHEMA"
ENV_BACKFILL_LOOKBACK_DAYS = "CANDLE_BACKFILL_LOOKBACK_DAYS"
ENV_SYNTHETIC_INTERVAL = "CANDLE_SYNTHETIC_INTERVAL"
ENV_BACKFILL_DAYS_PER_RUN = "CANDLE_BACKFILL_DAYS_PER_RUN"

KNOWN_SOURCES = ("csv", "yahoo", "synthetic", "polygon", "ccxt")
DEFAULT_SOURCE = "csv"
DEFAULT_STATE_DIRNAME = ".state"
# First day partition of every asset: the history our users keep reaches back to 2000.
DEFAULT_PARTITION_START = "2000-01-01"
DEFAULT_EXCHANGE = "XNYS"
# Console log level of runs launched from the command line; the Dagster UI keeps every event.
DEFAULT_LOG_LEVEL = "WARNING"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULT_WAREHOUSE_SCHEMA = "market"
# Schema, table and column names: lower-case SQL identifiers, never quoted user text.
SQL_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
WAREHOUSE_DATABASE = "candle"
DAGSTER_DATABASE = "dagster"

# Candle intervals, finest first; each is aggregated only from raw bars that are finer.
CANDLE_INTERVALS = ("5m", "15m", "30m", "1h", "4h", "1d")

# History a newly watched ticker gets backfilled, unless it names its own history start.
DEFAULT_BACKFILL_LOOKBACK_DAYS = 365
MAX_BACKFILL_LOOKBACK_DAYS = 100 * 366
# How often the new-tickers sensor compares the watch list with what it requested.
NEW_TICKERS_SENSOR_INTERVAL_SECONDS = 30
# How often the retry sensor looks for ticker-days whose wait for a retry is over.
RETRY_SENSOR_INTERVAL_SECONDS = 60

# A warehouse transaction that loses its connection (server restart, network) is run again on a
# new connection, up to this many attempts, waiting 0.5, 1, 2, ... seconds (at most the maximum).
DB_RETRY_ATTEMPTS = 6
DB_RETRY_FIRST_WAIT_SECONDS = 0.5
DB_RETRY_MAX_WAIT_SECONDS = 8.0

# Rows shown in the "preview" metadata of a materialisation.
PREVIEW_ROWS = 5

# Bar interval of the `synthetic` source (made-up bars for benchmarks and load tests only).
SYNTHETIC_INTERVALS = ("1m", "1d")
DEFAULT_SYNTHETIC_INTERVAL = "1m"
# Days one backfill run covers, unless CANDLE_BACKFILL_DAYS_PER_RUN says otherwise: a year of
# daily bars of the S&P 500 is ~130,000 rows, a week of its minute bars ~1.5 million, so the
# default follows the bar width the configured source delivers (it bounds a run's memory).
DAILY_BARS_DAYS_PER_RUN = 366
INTRADAY_BARS_DAYS_PER_RUN = 5
MAX_BACKFILL_DAYS_PER_RUN = 100 * 366
# Settings of the date x ticker partitions: set, they would silently do nothing, so they are
# refused with what replaces them.
RETIRED_SETTINGS = {
    "CANDLE_TIMINGS_START": "market_timings shares the day partitions from CANDLE_PARTITION_START",
    "CANDLE_BACKFILL_PARTITIONS_PER_RUN": "runs cover at most CANDLE_BACKFILL_DAYS_PER_RUN days",
}
# Rows per chunk of a warehouse COPY: bounds the memory of the encoded buffer, and lets encoding
# the next chunk overlap with the server ingesting the previous one.
COPY_CHUNK_ROWS = 50_000


# --- Market-data client: provider requests, rate limits, retries, Yahoo ----------

ENV_YAHOO_INTERVAL = "CANDLE_YAHOO_INTERVAL"
ENV_YAHOO_REPLAY_DIR = "CANDLE_YAHOO_REPLAY_DIR"
ENV_REQUESTS_PER_MINUTE = "CANDLE_PROVIDER_REQUESTS_PER_MINUTE"

# Bar widths Yahoo is asked for (its own names); daily bars reach back to a listing's first day.
YAHOO_INTERVALS = ("1m", "2m", "5m", "15m", "30m", "1h", "1d")
DEFAULT_YAHOO_INTERVAL = "1d"
# Yahoo's request windows per interval, in calendar days: (longest span one request may cover,
# how far back from today the interval is served). None: no limit. Yahoo documents none of this;
# these are the limits it enforces today (yfinance encodes the same numbers).
YAHOO_WINDOW_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "1m": (8, 30),
    "2m": (60, 60),
    "5m": (60, 60),
    "15m": (60, 60),
    "30m": (60, 60),
    "1h": (730, 730),
    "1d": (None, None),
}
# Yahoo publishes no quota; bursts of more than ~2,000 requests an hour get 429s. One request a
# second sustained, with a burst of a few, stays well below.
DEFAULT_REQUESTS_PER_MINUTE = 60.0
MAX_REQUESTS_PER_MINUTE = 6000.0
DEFAULT_REQUEST_BURST = 5
# Seconds one HTTP request may take before it counts as a timeout (and is retried).
DEFAULT_REQUEST_TIMEOUT_SECONDS = 20.0
# The one retry policy of the market-data client: attempts per request, exponential backoff with
# jitter between them, and the longest Retry-After we wait for before giving up.
DEFAULT_RETRY_ATTEMPTS = 5
DEFAULT_BACKOFF_INITIAL_SECONDS = 1.0
DEFAULT_BACKOFF_MAX_SECONDS = 60.0
DEFAULT_BACKOFF_JITTER_SECONDS = 1.0
DEFAULT_MAX_RETRY_AFTER_SECONDS = 300.0
# Circuit breaker: consecutive failed requests before a provider is not called any more, and the
# seconds before one trial request is let through again.
DEFAULT_BREAKER_FAILURES = 8
DEFAULT_BREAKER_RESET_SECONDS = 300.0
# A ticker-day the provider refused is asked again by the retry sensor after an hour, then after
# 2, 4 and 8 hours: five attempts in all, about a day, before it waits for a person or a run.
DEFAULT_FAILED_RETRY_FIRST_WAIT_SECONDS = 3600.0
DEFAULT_FAILED_RETRY_ATTEMPTS = 5


# --- More providers: Polygon (Massive), crypto exchanges through ccxt, routing and fallback ---

ENV_FALLBACK_SOURCES = "CANDLE_FALLBACK_SOURCES"
# The key is read by Dagster (`dagster.EnvVar`) where the resource is built; settings only check
# that it is there, never read its value.
ENV_POLYGON_API_KEY = "CANDLE_POLYGON_API_KEY"
ENV_POLYGON_INTERVAL = "CANDLE_POLYGON_INTERVAL"
ENV_POLYGON_REPLAY_DIR = "CANDLE_POLYGON_REPLAY_DIR"
ENV_CCXT_EXCHANGE = "CANDLE_CCXT_EXCHANGE"
ENV_CCXT_INTERVAL = "CANDLE_CCXT_INTERVAL"
ENV_CCXT_REPLAY_DIR = "CANDLE_CCXT_REPLAY_DIR"

# The source a crypto pair (`BTC/USDT`) is routed to when its watch-list entry names none.
CRYPTO_SOURCE = "ccxt"
# Sources that answer over HTTP and share the client's rate limiter, retries and breaker.
NETWORK_SOURCES = ("yahoo", "polygon", "ccxt")
POLYGON_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")
DEFAULT_POLYGON_INTERVAL = "1d"
# Polygon's free tier allows 5 requests a minute: the default rate of its token bucket.
DEFAULT_POLYGON_REQUESTS_PER_MINUTE = 5.0
DEFAULT_POLYGON_REQUEST_BURST = 1
CCXT_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "1d")
DEFAULT_CCXT_INTERVAL = "1d"
DEFAULT_CCXT_EXCHANGE = "binance"
# ccxt ids are lower-case words (binance, kraken, coinbase); the library says which exist.
CCXT_EXCHANGE_PATTERN = re.compile(r"[a-z][a-z0-9]{1,30}")


class SettingsError(ValueError):
    """A setting from the environment is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one process."""

    database_url: str | None
    dagster_database_url: str | None
    source: str
    csv_dir: Path
    state_dir: Path
    dagster_home: Path | None
    partition_start: date
    default_exchange: str
    log_level: str = DEFAULT_LOG_LEVEL
    extra_exchanges: tuple[str, ...] = ()
    backfill_lookback_days: int = DEFAULT_BACKFILL_LOOKBACK_DAYS
    warehouse_schema: str = DEFAULT_WAREHOUSE_SCHEMA
    yahoo_interval: str = DEFAULT_YAHOO_INTERVAL
    yahoo_replay_dir: Path | None = None
    requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE
    synthetic_interval: str = DEFAULT_SYNTHETIC_INTERVAL
    backfill_days_per_run: int | None = None
    fallback_sources: tuple[str, ...] = ()
    polygon_key_set: bool = False
    polygon_interval: str = DEFAULT_POLYGON_INTERVAL
    polygon_replay_dir: Path | None = None
    ccxt_exchange: str = DEFAULT_CCXT_EXCHANGE
    ccxt_interval: str = DEFAULT_CCXT_INTERVAL
    ccxt_replay_dir: Path | None = None

    @property
    def embedded_database(self) -> bool:
        """True when no external database is configured and the project runs its own Postgres."""
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        for name, replacement in RETIRED_SETTINGS.items():
            if _optional(env, name) is not None:
                raise SettingsError(f"{name} is no longer read: {replacement}")
        database_url = _optional(env, ENV_DATABASE_URL)
        if database_url is not None:
            validate_postgres_url(database_url, ENV_DATABASE_URL)
        dagster_database_url = _optional(env, ENV_DAGSTER_DATABASE_URL)
        if dagster_database_url is not None:
            validate_postgres_url(dagster_database_url, ENV_DAGSTER_DATABASE_URL)

        source = (_optional(env, ENV_SOURCE) or DEFAULT_SOURCE).lower()
        if source not in KNOWN_SOURCES:
            raise SettingsError(
                f"{ENV_SOURCE}={source!r} is not a known market-data source; "
                f"choose one of: {', '.join(KNOWN_SOURCES)}"
            )

        csv_dir = Path(_optional(env, ENV_CSV_DIR) or SAMPLE_DATA_DIR).expanduser().resolve()
        if not csv_dir.is_dir():
            raise SettingsError(f"{ENV_CSV_DIR}={csv_dir} is not a directory")

        state_dir = Path(_optional(env, ENV_STATE_DIR) or Path.cwd() / DEFAULT_STATE_DIRNAME)
        dagster_home = _optional(env, ENV_DAGSTER_HOME)

        partition_start = parse_date(
            _optional(env, ENV_PARTITION_START) or DEFAULT_PARTITION_START, ENV_PARTITION_START
        )
        if partition_start > date.today():
            raise SettingsError(f"{ENV_PARTITION_START}={partition_start} is in the future")
        default_exchange = _exchange(
            _optional(env, ENV_DEFAULT_EXCHANGE) or DEFAULT_EXCHANGE, ENV_DEFAULT_EXCHANGE
        )

        log_level = (_optional(env, ENV_LOG_LEVEL) or DEFAULT_LOG_LEVEL).upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(
                f"{ENV_LOG_LEVEL}={log_level!r}: choose one of {', '.join(LOG_LEVELS)}"
            )

        extra_exchanges = tuple(
            _exchange(code, ENV_EXCHANGES)
            for code in (_optional(env, ENV_EXCHANGES) or "").split(",")
            if code.strip()
        )
        lookback = _positive_int(
            env,
            ENV_BACKFILL_LOOKBACK_DAYS,
            DEFAULT_BACKFILL_LOOKBACK_DAYS,
            MAX_BACKFILL_LOOKBACK_DAYS,
        )
        schema = validate_identifier(
            _optional(env, ENV_WAREHOUSE_SCHEMA) or DEFAULT_WAREHOUSE_SCHEMA, ENV_WAREHOUSE_SCHEMA
        )
        yahoo_interval, yahoo_replay_dir, requests_per_minute = _market_data_client(env)

        synthetic_interval = _optional(env, ENV_SYNTHETIC_INTERVAL) or DEFAULT_SYNTHETIC_INTERVAL
        if synthetic_interval not in SYNTHETIC_INTERVALS:
            raise SettingsError(
                f"{ENV_SYNTHETIC_INTERVAL}={synthetic_interval!r}: choose one of "
                f"{', '.join(SYNTHETIC_INTERVALS)}"
            )
        days_per_run = None
        if _optional(env, ENV_BACKFILL_DAYS_PER_RUN) is not None:
            days_per_run = _positive_int(
                env, ENV_BACKFILL_DAYS_PER_RUN, default=1, maximum=MAX_BACKFILL_DAYS_PER_RUN
            )

        providers = _providers(env, source)
        return cls(
            **providers,
            database_url=database_url,
            dagster_database_url=dagster_database_url,
            source=source,
            csv_dir=csv_dir,
            state_dir=state_dir.expanduser().resolve(),
            dagster_home=Path(dagster_home).expanduser().resolve() if dagster_home else None,
            partition_start=partition_start,
            default_exchange=default_exchange,
            log_level=log_level,
            extra_exchanges=extra_exchanges,
            backfill_lookback_days=lookback,
            warehouse_schema=schema,
            yahoo_interval=yahoo_interval,
            yahoo_replay_dir=yahoo_replay_dir,
            requests_per_minute=requests_per_minute,
            synthetic_interval=synthetic_interval,
            backfill_days_per_run=days_per_run,
        )


def _market_data_client(env: Mapping[str, str]) -> tuple[str, Path | None, float]:
    """The Yahoo interval, replay folder and request rate, validated."""
    interval = (_optional(env, ENV_YAHOO_INTERVAL) or DEFAULT_YAHOO_INTERVAL).lower()
    if interval not in YAHOO_INTERVALS:
        raise SettingsError(
            f"{ENV_YAHOO_INTERVAL}={interval!r}: choose one of {', '.join(YAHOO_INTERVALS)}"
        )
    replay = _optional(env, ENV_YAHOO_REPLAY_DIR)
    replay_dir = Path(replay).expanduser().resolve() if replay else None
    if replay_dir is not None and not replay_dir.is_dir():
        raise SettingsError(f"{ENV_YAHOO_REPLAY_DIR}={replay_dir} is not a directory")
    rate_text = _optional(env, ENV_REQUESTS_PER_MINUTE)
    try:
        rate = float(rate_text) if rate_text else DEFAULT_REQUESTS_PER_MINUTE
    except ValueError:
        raise SettingsError(f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} is not a number") from None
    if not rate > 0:
        raise SettingsError(f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} must be above zero")
    if rate > MAX_REQUESTS_PER_MINUTE:
        raise SettingsError(
            f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} is absurd: at most {MAX_REQUESTS_PER_MINUTE}"
        )
    return interval, replay_dir, rate


def _providers(env: Mapping[str, str], source: str) -> dict[str, object]:
    """The settings of Polygon, ccxt and the fallback sources, validated. Polygon without a
    replay needs its API key in the environment: its absence is a start-up error."""
    fallbacks = tuple(
        dict.fromkeys(
            name.strip().lower()
            for name in (_optional(env, ENV_FALLBACK_SOURCES) or "").split(",")
            if name.strip()
        )
    )
    unknown = [name for name in fallbacks if name not in KNOWN_SOURCES]
    if unknown:
        raise SettingsError(
            f"{ENV_FALLBACK_SOURCES}: {', '.join(map(repr, unknown))} not a known market-data "
            f"source; choose among: {', '.join(KNOWN_SOURCES)}"
        )
    polygon_interval = _choice(
        env, ENV_POLYGON_INTERVAL, DEFAULT_POLYGON_INTERVAL, POLYGON_INTERVALS
    )
    ccxt_interval = _choice(env, ENV_CCXT_INTERVAL, DEFAULT_CCXT_INTERVAL, CCXT_INTERVALS)
    exchange = (_optional(env, ENV_CCXT_EXCHANGE) or DEFAULT_CCXT_EXCHANGE).lower()
    if not CCXT_EXCHANGE_PATTERN.fullmatch(exchange):
        raise SettingsError(f"{ENV_CCXT_EXCHANGE}={exchange!r} is not a ccxt exchange id")
    polygon_replay = _folder(env, ENV_POLYGON_REPLAY_DIR)
    key_set = _optional(env, ENV_POLYGON_API_KEY) is not None
    if "polygon" in (source, *fallbacks) and polygon_replay is None and not key_set:
        raise SettingsError(
            f"{ENV_POLYGON_API_KEY} is not set: Polygon (Massive) needs your API key "
            f"(or {ENV_POLYGON_REPLAY_DIR} to replay recorded answers)"
        )
    return {
        "fallback_sources": tuple(name for name in fallbacks if name != source),
        "polygon_key_set": key_set,
        "polygon_interval": polygon_interval,
        "polygon_replay_dir": polygon_replay,
        "ccxt_exchange": exchange,
        "ccxt_interval": ccxt_interval,
        "ccxt_replay_dir": _folder(env, ENV_CCXT_REPLAY_DIR),
    }


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_optional(env, name) or default).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


def _folder(env: Mapping[str, str], name: str) -> Path | None:
    text = _optional(env, name)
    if text is None:
        return None
    folder = Path(text).expanduser().resolve()
    if not folder.is_dir():
        raise SettingsError(f"{name}={folder} is not a directory")
    return folder


def _exchange(code: str, what: str) -> str:
    try:
        return validate_mic(code)
    except UnknownExchangeError as error:
        raise SettingsError(f"{what}: {error}") from None


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def validate_identifier(name: str, what: str) -> str:
    """`name` if it is a plain lower-case SQL identifier, else a SettingsError naming `what`."""
    if not SQL_IDENTIFIER.fullmatch(name):
        raise SettingsError(
            f"{what}={name!r} is not a valid SQL name (lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters)"
        )
    return name


def parse_date(text: str, what: str) -> date:
    """Parse an ISO date (YYYY-MM-DD), naming `what` in the error."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(f"{what}: {text!r} is not a date in the form YYYY-MM-DD") from None


def validate_postgres_url(url: str, what: str) -> None:
    """Refuse anything but a postgresql:// URL; the error never repeats the password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError(f"{what} is not a valid URL (expected postgresql://...)") from None
    if parsed.get_backend_name() != "postgresql":
        raise SettingsError(f"{what} must be a postgresql:// URL, got scheme {parsed.drivername!r}")
    if not parsed.database:
        raise SettingsError(f"{what} must name a database: {mask_url(url)}")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and metadata."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()


# The bundled sample: (tickers, first day, last day) groups that `candle-pipeline demo` loads.
SAMPLE_SESSIONS = (
    (("SPY", "AIG", "BAC", "IBM"), date(2013, 10, 4), date(2013, 10, 11)),
    (("AAPL",), date(2014, 6, 5), date(2014, 6, 9)),
    (("GOOG",), date(2015, 12, 23), date(2015, 12, 28)),
)


# --- Operations: the Dagster deployment, schedules and health checks ---------------

ENV_MAX_CONCURRENT_RUNS = "CANDLE_MAX_CONCURRENT_RUNS"
ENV_COMPUTE_LOG_DIR = "CANDLE_COMPUTE_LOG_DIR"
ENV_MARKET_API_POOL_LIMIT = "CANDLE_MARKET_API_POOL_LIMIT"
ENV_SCHEDULE_DELAY_MINUTES = "CANDLE_SCHEDULE_DELAY_MINUTES"
ENV_CATCHUP_DAYS = "CANDLE_CATCHUP_DAYS"
ENV_CATCHUP_CRON = "CANDLE_CATCHUP_CRON"
ENV_SCHEDULES_RUNNING = "CANDLE_SCHEDULES_RUNNING"
ENV_INTRADAY_MINUTES = "CANDLE_INTRADAY_MINUTES"
ENV_INTRADAY_ALL = "CANDLE_INTRADAY_ALL"

# Runs in progress at once across the deployment (the QueuedRunCoordinator's limit).
DEFAULT_MAX_CONCURRENT_RUNS = 4
# The concurrency pool of every step that calls the market-data provider. Its limit is how many
# such steps run at once across all run workers (`pools apply`, `demo` and `ui` set it); the
# request rate itself is the token bucket's, shared through the warehouse.
MARKET_API_POOL = "market_api"
DEFAULT_MARKET_API_POOL_LIMIT = 1
# Per-exchange schedules tick this long after the exchange's regular close.
DEFAULT_SCHEDULE_DELAY_MINUTES = 30
# The weekly catch-up looks back this many days for missing or failed partitions.
DEFAULT_CATCHUP_DAYS = 14
# Saturday 06:00 UTC: after Friday's close on every exchange.
DEFAULT_CATCHUP_CRON = "0 6 * * 6"
# The daily market_timings schedule (UTC) and how far ahead of today it materialises.
TIMINGS_SCHEDULE_CRON = "15 0 * * *"
TIMINGS_SCHEDULE_DAYS_AHEAD = 7
# The intraday schedule refreshes the open sessions this often; the minutes divide an hour, so
# the ticks fall at the same minutes of every hour.
DEFAULT_INTRADAY_MINUTES = 15
MINUTES_PER_HOUR = 60
COMPUTE_LOG_DIRNAME = "compute_logs"
# `doctor`: how long a database may take to answer.
DOCTOR_CONNECT_TIMEOUT_SECONDS = 5
# Values beyond these are typing mistakes, not configurations.
MAX_CONCURRENT_RUNS = 256
MAX_POOL_LIMIT = 64
MAX_SCHEDULE_DELAY_MINUTES = 12 * 60
MAX_CATCHUP_DAYS = 366
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclass(frozen=True)
class OperationsSettings:
    """How the deployment runs: run and pool limits, compute logs, schedules."""

    max_concurrent_runs: int
    compute_log_dir: Path | None
    market_api_pool_limit: int
    schedule_delay_minutes: int
    catchup_days: int
    catchup_cron: str
    schedules_running: bool
    intraday_minutes: int = DEFAULT_INTRADAY_MINUTES
    # Every active ticker is refreshed intraday, not only those marked `--intraday`.
    intraday_all: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperationsSettings:
        env = os.environ if environ is None else environ
        compute_log_dir = _optional(env, ENV_COMPUTE_LOG_DIR)
        catchup_cron = _optional(env, ENV_CATCHUP_CRON) or DEFAULT_CATCHUP_CRON
        if not _is_cron(catchup_cron):
            raise SettingsError(
                f"{ENV_CATCHUP_CRON}={catchup_cron!r} is not a cron expression "
                "(five fields, e.g. '0 6 * * 6')"
            )
        return cls(
            max_concurrent_runs=_positive_int(
                env, ENV_MAX_CONCURRENT_RUNS, DEFAULT_MAX_CONCURRENT_RUNS, MAX_CONCURRENT_RUNS
            ),
            compute_log_dir=Path(compute_log_dir).expanduser().resolve()
            if compute_log_dir
            else None,
            market_api_pool_limit=_positive_int(
                env, ENV_MARKET_API_POOL_LIMIT, DEFAULT_MARKET_API_POOL_LIMIT, MAX_POOL_LIMIT
            ),
            schedule_delay_minutes=_non_negative_int(
                env,
                ENV_SCHEDULE_DELAY_MINUTES,
                DEFAULT_SCHEDULE_DELAY_MINUTES,
                MAX_SCHEDULE_DELAY_MINUTES,
            ),
            catchup_days=_positive_int(
                env, ENV_CATCHUP_DAYS, DEFAULT_CATCHUP_DAYS, MAX_CATCHUP_DAYS
            ),
            catchup_cron=catchup_cron,
            schedules_running=_boolean(env, ENV_SCHEDULES_RUNNING, default=False),
            intraday_minutes=_intraday_minutes(env),
            intraday_all=_boolean(env, ENV_INTRADAY_ALL, default=False),
        )


def _intraday_minutes(env: Mapping[str, str]) -> int:
    minutes = _positive_int(env, ENV_INTRADAY_MINUTES, DEFAULT_INTRADAY_MINUTES, MINUTES_PER_HOUR)
    if MINUTES_PER_HOUR % minutes:
        raise SettingsError(
            f"{ENV_INTRADAY_MINUTES}={minutes} must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, "
            "15, 20, 30 or 60)"
        )
    return minutes


def _non_negative_int(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    text = _optional(env, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number") from None
    if value < 0:
        raise SettingsError(f"{name}={value} must not be negative")
    if value > maximum:
        raise SettingsError(f"{name}={value} is absurd: at most {maximum}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    value = _non_negative_int(env, name, default, maximum)
    if value == 0:
        raise SettingsError(f"{name}=0 must be at least 1")
    return value


def _boolean(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = _optional(env, name)
    if text is None:
        return default
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={text!r}: use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def _is_cron(text: str) -> bool:
    from dagster._utils.schedules import is_valid_cron_string  # noqa: PLC0415 - Dagster is heavy

    return is_valid_cron_string(text)


@functools.cache
def get_operations_settings() -> OperationsSettings:
    """The process's operations settings, read from the environment on first use."""
    return OperationsSettings.from_env()


# --- Data quality: validation rules, the quality gate, freshness and alerts ---------

ENV_QUALITY_THRESHOLD = "CANDLE_QUALITY_THRESHOLD"
ENV_SPIKE_THRESHOLD = "CANDLE_SPIKE_THRESHOLD"
ENV_FRESHNESS_DELAY_MINUTES = "CANDLE_FRESHNESS_DELAY_MINUTES"
ENV_ALERT_WEBHOOK_URL = "CANDLE_ALERT_WEBHOOK_URL"
ENV_ALERT_MIN_SEVERITY = "CANDLE_ALERT_MIN_SEVERITY"
ENV_DAGSTER_UI_URL = "CANDLE_DAGSTER_UI_URL"
ENV_CROSSCHECK_TOLERANCE = "CANDLE_CROSSCHECK_TOLERANCE"

# A ticker-day whose quality score is below this never reaches `candles`.
DEFAULT_QUALITY_THRESHOLD = 0.8
# A bar is a spike when a price moves more than this fraction from the previous close.
DEFAULT_SPIKE_THRESHOLD = 0.5
# Each unexplained spike in the regular session multiplies the consistency component by this.
SPIKE_PENALTY = 0.5
# A stale run: at least this many consecutive bars with the same close and zero volume.
STALE_RUN_MIN_BARS = 10
# A gap: at least this many consecutive expected regular-session bars without a usable bar
# (single quiet minutes without a trade are normal and only lower completeness).
GAP_MIN_BARS = 5
# A ticker's first bar is measured from its last valid close at most this many days earlier.
PREVIOUS_CLOSE_LOOKBACK_DAYS = 10
# Offending rows (or gaps) shown in a check's metadata and in a partition's metadata.
OFFENDING_ROWS_SHOWN = 5
# The latest trading day's candles are due this long after the exchange's regular close.
DEFAULT_FRESHNESS_DELAY_MINUTES = 120
# Beyond a day, the next session closes before the last one is due.
MAX_FRESHNESS_DELAY_MINUTES = 24 * 60
# Two sources' closes of a ticker-day differing by more than this fraction are a mismatch.
DEFAULT_CROSSCHECK_TOLERANCE = 0.005
# Sources a tenth apart serve different prices, whatever the tolerance says.
MAX_CROSSCHECK_TOLERANCE = 0.1
# A move of more than 10x is no threshold: every split would pass unexplained.
MAX_SPIKE_THRESHOLD = 10.0
# How often the freshness check runs when its schedule is on (UTC cron).
FRESHNESS_CHECK_CRON = "*/30 * * * *"
# Days back from today in which the freshness check looks for the latest closed session.
FRESHNESS_LOOKBACK_DAYS = 10
# Check failures of at least this severity are alerted; failed runs always are.
ALERT_SEVERITIES = ("WARN", "ERROR")
DEFAULT_ALERT_MIN_SEVERITY = "ERROR"
DEFAULT_DAGSTER_UI_URL = "http://localhost:3000"
ALERT_SENSOR_INTERVAL_SECONDS = 30
# How often the daemon records the settings it runs with (for `doctor`).
SETTINGS_SENSOR_INTERVAL_SECONDS = 60
# Events read from the instance per sensor tick (a year-long backfill of one check is one
# digest); the cursor continues on the next tick.
ALERT_EVENTS_PER_TICK = 5000


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality rules and gate, the freshness delay and where alerts go.

    The webhook URL is a secret: only whether it is set is kept here; resources read it through
    `dagster.EnvVar`.
    """

    quality_threshold: float = DEFAULT_QUALITY_THRESHOLD
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD
    freshness_delay_minutes: int = DEFAULT_FRESHNESS_DELAY_MINUTES
    alert_webhook_configured: bool = False
    alert_min_severity: str = DEFAULT_ALERT_MIN_SEVERITY
    dagster_ui_url: str = DEFAULT_DAGSTER_UI_URL
    crosscheck_tolerance: float = DEFAULT_CROSSCHECK_TOLERANCE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QualitySettings:
        env = os.environ if environ is None else environ
        severity = (_optional(env, ENV_ALERT_MIN_SEVERITY) or DEFAULT_ALERT_MIN_SEVERITY).upper()
        if severity not in ALERT_SEVERITIES:
            choices = ", ".join(ALERT_SEVERITIES)
            raise SettingsError(f"{ENV_ALERT_MIN_SEVERITY}={severity!r}: choose one of {choices}")
        ui_url = (_optional(env, ENV_DAGSTER_UI_URL) or DEFAULT_DAGSTER_UI_URL).rstrip("/")
        if not ui_url.startswith(("http://", "https://")):
            raise SettingsError(f"{ENV_DAGSTER_UI_URL}={ui_url!r} must be an http(s):// URL")
        return cls(
            quality_threshold=_fraction(
                env, ENV_QUALITY_THRESHOLD, DEFAULT_QUALITY_THRESHOLD, upper=1.0
            ),
            spike_threshold=_fraction(
                env, ENV_SPIKE_THRESHOLD, DEFAULT_SPIKE_THRESHOLD, upper=MAX_SPIKE_THRESHOLD
            ),
            freshness_delay_minutes=_positive_int(
                env,
                ENV_FRESHNESS_DELAY_MINUTES,
                DEFAULT_FRESHNESS_DELAY_MINUTES,
                MAX_FRESHNESS_DELAY_MINUTES,
            ),
            alert_webhook_configured=_optional(env, ENV_ALERT_WEBHOOK_URL) is not None,
            alert_min_severity=severity,
            dagster_ui_url=ui_url,
            crosscheck_tolerance=_fraction(
                env,
                ENV_CROSSCHECK_TOLERANCE,
                DEFAULT_CROSSCHECK_TOLERANCE,
                upper=MAX_CROSSCHECK_TOLERANCE,
            ),
        )


def _fraction(env: Mapping[str, str], name: str, default: float, upper: float) -> float:
    """A number in (0, upper], e.g. 0.8 for 80%."""
    text = _optional(env, name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number (e.g. 0.8 for 80%)") from None
    if not value > 0:
        raise SettingsError(f"{name}={text} must be greater than 0")
    if value > upper:
        raise SettingsError(f"{name}={text} is absurd: at most {upper}")
    return value


@functools.cache
def get_quality_settings() -> QualitySettings:
    """The process's quality settings, read from the environment on first use."""
    return QualitySettings.from_env()


def settings_in_use() -> dict[str, str]:
    """The settings this process runs with, by variable, as text safe to show (database URLs
    masked, secrets only as set or unset): what `candle-pipeline doctor` compares between the
    command line and the Dagster daemon."""
    settings, operations, quality = (
        get_settings(),
        get_operations_settings(),
        get_quality_settings(),
    )
    return {
        ENV_DATABASE_URL: mask_url(settings.database_url) if settings.database_url else "embedded",
        ENV_SOURCE: settings.source,
        ENV_CSV_DIR: str(settings.csv_dir),
        ENV_PARTITION_START: settings.partition_start.isoformat(),
        ENV_DEFAULT_EXCHANGE: settings.default_exchange,
        ENV_EXCHANGES: ",".join(settings.extra_exchanges),
        ENV_WAREHOUSE_SCHEMA: settings.warehouse_schema,
        ENV_BACKFILL_DAYS_PER_RUN: str(settings.backfill_days_per_run or "default"),
        ENV_YAHOO_INTERVAL: settings.yahoo_interval,
        ENV_REQUESTS_PER_MINUTE: str(settings.requests_per_minute),
        ENV_SCHEDULES_RUNNING: str(operations.schedules_running).lower(),
        ENV_QUALITY_THRESHOLD: str(quality.quality_threshold),
        ENV_SPIKE_THRESHOLD: str(quality.spike_threshold),
        ENV_CROSSCHECK_TOLERANCE: str(quality.crosscheck_tolerance),
        ENV_ALERT_WEBHOOK_URL: "set" if quality.alert_webhook_configured else "unset",
        ENV_ALERT_MIN_SEVERITY: quality.alert_min_severity,
    }


def validate_settings() -> None:
    """Read every group of settings once; the first malformed one raises `SettingsError`."""
    get_settings()
    get_operations_settings()
    get_quality_settings()
