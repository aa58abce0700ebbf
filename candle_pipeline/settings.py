"""Every setting of candle-pipeline: read from the environment once, validated, in one place.

Tunable constants live here too, so no function hides a number a user might want to change.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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
ENV_TIMINGS_START = "CANDLE_TIMINGS_START"
ENV_DEFAULT_EXCHANGE = "CANDLE_DEFAULT_EXCHANGE"
ENV_DAGSTER_HOME = "DAGSTER_HOME"
ENV_LOG_LEVEL = "CANDLE_LOG_LEVEL"
ENV_EXCHANGES = "CANDLE_EXCHANGES"
ENV_BACKFILL_LOOKBACK_DAYS = "CANDLE_BACKFILL_LOOKBACK_DAYS"
ENV_SYNTHETIC_INTERVAL = "CANDLE_SYNTHETIC_INTERVAL"
ENV_BACKFILL_PARTITIONS_PER_RUN = "CANDLE_BACKFILL_PARTITIONS_PER_RUN"

KNOWN_SOURCES = ("csv", "synthetic")
DEFAULT_SOURCE = "csv"
DEFAULT_STATE_DIRNAME = ".state"
# First day of the per-ticker daily partitions; the bundled and fixture data start in 2008.
DEFAULT_PARTITION_START = "2008-01-01"
# market_timings reaches further back (cheap: one calendar computation for the whole range) and
# ahead, because exchanges publish their holidays a year or more in advance.
DEFAULT_TIMINGS_START = "2000-01-01"
TIMINGS_DAYS_AHEAD = 400
DEFAULT_EXCHANGE = "XNYS"
# Console log level of runs launched from the command line; the Dagster UI keeps every event.
DEFAULT_LOG_LEVEL = "WARNING"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

WAREHOUSE_SCHEMA = "market"
WAREHOUSE_DATABASE = "candle"
DAGSTER_DATABASE = "dagster"

# Candle intervals, finest first; each is aggregated only from raw bars that are finer.
CANDLE_INTERVALS = ("5m", "15m", "30m", "1h", "1d")

# History a newly watched ticker gets backfilled, unless it names its own history start.
DEFAULT_BACKFILL_LOOKBACK_DAYS = 365
# How often the new-tickers sensor compares the watch list with the ticker partitions.
NEW_TICKERS_SENSOR_INTERVAL_SECONDS = 30

# Rows shown in the "preview" metadata of a materialisation.
PREVIEW_ROWS = 5

# --- Scale (issue 7) ---
# Bar interval of the `synthetic` source (made-up bars for benchmarks and load tests only).
SYNTHETIC_INTERVALS = ("1m", "1d")
DEFAULT_SYNTHETIC_INTERVAL = "1m"
# Backfill policy of the per-ticker assets: unset, one run per partition range Dagster plans;
# a number N, runs of at most N ticker-days each (bounds a run's memory and its retry cost).
DEFAULT_BACKFILL_PARTITIONS_PER_RUN: int | None = None
# Rows per chunk of a warehouse COPY: bounds the memory of the encoded buffer, and lets encoding
# the next chunk overlap with the server ingesting the previous one.
COPY_CHUNK_ROWS = 50_000


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
    timings_start: date
    default_exchange: str
    log_level: str = DEFAULT_LOG_LEVEL
    extra_exchanges: tuple[str, ...] = ()
    backfill_lookback_days: int = DEFAULT_BACKFILL_LOOKBACK_DAYS
    synthetic_interval: str = DEFAULT_SYNTHETIC_INTERVAL
    backfill_partitions_per_run: int | None = DEFAULT_BACKFILL_PARTITIONS_PER_RUN

    @property
    def embedded_database(self) -> bool:
        """True when no external database is configured and the project runs its own Postgres."""
        return self.database_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
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
        timings_start = parse_date(
            _optional(env, ENV_TIMINGS_START) or DEFAULT_TIMINGS_START, ENV_TIMINGS_START
        )
        if timings_start > partition_start:
            raise SettingsError(
                f"{ENV_TIMINGS_START}={timings_start} must not be later than "
                f"{ENV_PARTITION_START}={partition_start}: every ticker-day needs its timings"
            )
        default_exchange = (_optional(env, ENV_DEFAULT_EXCHANGE) or DEFAULT_EXCHANGE).upper()

        log_level = (_optional(env, ENV_LOG_LEVEL) or DEFAULT_LOG_LEVEL).upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(
                f"{ENV_LOG_LEVEL}={log_level!r}: choose one of {', '.join(LOG_LEVELS)}"
            )

        extra_exchanges = tuple(
            code.strip().upper()
            for code in (_optional(env, ENV_EXCHANGES) or "").split(",")
            if code.strip()
        )
        lookback = _positive_int(env, ENV_BACKFILL_LOOKBACK_DAYS, DEFAULT_BACKFILL_LOOKBACK_DAYS)

        synthetic_interval = _optional(env, ENV_SYNTHETIC_INTERVAL) or DEFAULT_SYNTHETIC_INTERVAL
        if synthetic_interval not in SYNTHETIC_INTERVALS:
            raise SettingsError(
                f"{ENV_SYNTHETIC_INTERVAL}={synthetic_interval!r}: choose one of "
                f"{', '.join(SYNTHETIC_INTERVALS)}"
            )
        partitions_per_run = DEFAULT_BACKFILL_PARTITIONS_PER_RUN
        if _optional(env, ENV_BACKFILL_PARTITIONS_PER_RUN) is not None:
            partitions_per_run = _positive_int(env, ENV_BACKFILL_PARTITIONS_PER_RUN, default=1)

        return cls(
            database_url=database_url,
            dagster_database_url=dagster_database_url,
            source=source,
            csv_dir=csv_dir,
            state_dir=state_dir.expanduser().resolve(),
            dagster_home=Path(dagster_home).expanduser().resolve() if dagster_home else None,
            partition_start=partition_start,
            timings_start=timings_start,
            default_exchange=default_exchange,
            log_level=log_level,
            extra_exchanges=extra_exchanges,
            backfill_lookback_days=lookback,
            synthetic_interval=synthetic_interval,
            backfill_partitions_per_run=partitions_per_run,
        )


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = _optional(env, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={value} must be positive")
    return value


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
