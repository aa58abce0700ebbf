"""The environment, mapped onto the resources' fields and the deployment's few other values.

Each resource declares its fields with their defaults (`resources/`): that is the one place a
default is written, and a variable that is not set leaves its field there. This module says which
variable sets which field, reads the environment when asked (never at import), and validates
every value at start: a bad one is one `SettingsError` line naming the variable. The values that
are no resource field (partition start, state folder, DAGSTER_HOME, log level, schedules, run and
pool limits) keep their defaults here. README's "Configuration" lists every variable.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from candle_pipeline.database_settings import (
    DEFAULT_WAREHOUSE_SCHEMA,
    ENV_DATABASE_URL,
    ENV_WAREHOUSE_SCHEMA,
    SettingsError,
    mask_url,
    validate_postgres_url,
    warehouse_schema,
)
from candle_pipeline.domain.alerts import ALERT_SEVERITIES
from candle_pipeline.domain.exchanges import UnknownExchangeError, validate_mic
from candle_pipeline.domain.routing import KNOWN_SOURCES
from candle_pipeline.resources.alerts import ENV_ALERT_WEBHOOK_URL

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
SP500_CONSTITUENTS = PACKAGE_DIR / "data" / "universe" / "sp500_constituents.csv"

# --- Variables that set a resource field (resource key: field) --------------------------------
ENV_SOURCE = "CANDLE_SOURCE"  # market_data: source
ENV_CSV_DIR = "CANDLE_CSV_DIR"  # market_data: csv_dir
ENV_DEFAULT_EXCHANGE = "CANDLE_DEFAULT_EXCHANGE"  # warehouse: default_exchange
ENV_EXCHANGES = "CANDLE_EXCHANGES"  # warehouse: extra_exchanges
ENV_FALLBACK_SOURCES = "CANDLE_FALLBACK_SOURCES"  # market_data: fallback_sources
ENV_YAHOO_INTERVAL = "CANDLE_YAHOO_INTERVAL"  # market_data: yahoo_interval
ENV_YAHOO_REPLAY_DIR = "CANDLE_YAHOO_REPLAY_DIR"  # market_data: yahoo_replay_dir
ENV_REQUESTS_PER_MINUTE = "CANDLE_PROVIDER_REQUESTS_PER_MINUTE"  # market_data: requests_per_minute
ENV_SYNTHETIC_INTERVAL = "CANDLE_SYNTHETIC_INTERVAL"  # market_data: synthetic_interval
# The key is read by Dagster (`dg.EnvVar`) where the resource is built; settings only check that
# it is there, never read its value.
ENV_POLYGON_API_KEY = "CANDLE_POLYGON_API_KEY"  # market_data: polygon_api_key, through dg.EnvVar
ENV_POLYGON_INTERVAL = "CANDLE_POLYGON_INTERVAL"  # market_data: polygon_interval
ENV_POLYGON_REPLAY_DIR = "CANDLE_POLYGON_REPLAY_DIR"  # market_data: polygon_replay_dir
ENV_CCXT_EXCHANGE = "CANDLE_CCXT_EXCHANGE"  # market_data: ccxt_exchange
ENV_CCXT_INTERVAL = "CANDLE_CCXT_INTERVAL"  # market_data: ccxt_interval
ENV_CCXT_REPLAY_DIR = "CANDLE_CCXT_REPLAY_DIR"  # market_data: ccxt_replay_dir
ENV_QUALITY_THRESHOLD = "CANDLE_QUALITY_THRESHOLD"  # quality: quality_threshold
ENV_SPIKE_THRESHOLD = "CANDLE_SPIKE_THRESHOLD"  # quality: spike_threshold
ENV_FRESHNESS_DELAY_MINUTES = "CANDLE_FRESHNESS_DELAY_MINUTES"  # quality: freshness_delay_minutes
ENV_CROSSCHECK_TOLERANCE = "CANDLE_CROSSCHECK_TOLERANCE"  # quality: crosscheck_tolerance
ENV_ALERT_MIN_SEVERITY = "CANDLE_ALERT_MIN_SEVERITY"  # alert_webhook: min_severity
ENV_DAGSTER_UI_URL = "CANDLE_DAGSTER_UI_URL"  # alert_webhook: dagster_ui_url

# --- Variables of the deployment (no resource field), with their defaults ----------------------
ENV_DAGSTER_DATABASE_URL = "CANDLE_DAGSTER_DATABASE_URL"
ENV_STATE_DIR = "CANDLE_STATE_DIR"
ENV_PARTITION_START = "CANDLE_PARTITION_START"
ENV_DAGSTER_HOME = "DAGSTER_HOME"
ENV_LOG_LEVEL = "CANDLE_LOG_LEVEL"
ENV_BACKFILL_LOOKBACK_DAYS = "CANDLE_BACKFILL_LOOKBACK_DAYS"
ENV_BACKFILL_DAYS_PER_RUN = "CANDLE_BACKFILL_DAYS_PER_RUN"

DEFAULT_STATE_DIRNAME = ".state"
# First day partition of every asset: the history our users keep reaches back to 2000.
DEFAULT_PARTITION_START = "2000-01-01"
# Console log level of runs launched from the command line; the Dagster UI keeps every event.
DEFAULT_LOG_LEVEL = "WARNING"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# History a newly watched ticker gets backfilled, unless it names its own history start.
DEFAULT_BACKFILL_LOOKBACK_DAYS = 365
MAX_BACKFILL_LOOKBACK_DAYS = 100 * 366
MAX_BACKFILL_DAYS_PER_RUN = 100 * 366
MAX_REQUESTS_PER_MINUTE = 6000.0
# ccxt ids are lower-case words (binance, kraken, coinbase); the library says which exist.
CCXT_EXCHANGE_PATTERN = re.compile(r"[a-z][a-z0-9]{1,30}")
# Settings of the date x ticker partitions: set, they would silently do nothing, so they are
# refused with what replaces them.
RETIRED_SETTINGS = {
    "CANDLE_TIMINGS_START": "market_timings shares the day partitions from CANDLE_PARTITION_START",
    "CANDLE_BACKFILL_PARTITIONS_PER_RUN": "runs cover at most CANDLE_BACKFILL_DAYS_PER_RUN days",
}


# The resources and providers are imported at first use, not with this module: they load the
# table definitions, which read CANDLE_WAREHOUSE_SCHEMA, and a malformed value must reach the
# command line as one `SettingsError` line from `validate_settings`, not as an import traceback.


@functools.cache
def _resources() -> dict[str, type[dg.ConfigurableResource]]:
    """The resource classes whose defaults unset variables leave in force, by resource key."""
    from candle_pipeline.resources.alerts import AlertWebhookResource  # noqa: PLC0415
    from candle_pipeline.resources.market_data import MarketDataResource  # noqa: PLC0415
    from candle_pipeline.resources.quality import QualityResource  # noqa: PLC0415
    from candle_pipeline.resources.warehouse import WarehouseResource  # noqa: PLC0415

    return {
        "warehouse": WarehouseResource,
        "market_data": MarketDataResource,
        "quality": QualityResource,
        "alert_webhook": AlertWebhookResource,
    }


@functools.cache
def _choices() -> dict[str, tuple[str, ...]]:
    """The bar intervals each interval variable accepts, as the providers say."""
    from candle_pipeline.providers.crypto import CCXT_INTERVALS  # noqa: PLC0415
    from candle_pipeline.providers.polygon import POLYGON_INTERVALS  # noqa: PLC0415
    from candle_pipeline.providers.synthetic import INTERVALS  # noqa: PLC0415
    from candle_pipeline.providers.yahoo import YAHOO_INTERVALS  # noqa: PLC0415

    return {
        ENV_YAHOO_INTERVAL: YAHOO_INTERVALS,
        ENV_SYNTHETIC_INTERVAL: INTERVALS,
        ENV_POLYGON_INTERVAL: POLYGON_INTERVALS,
        ENV_CCXT_INTERVAL: CCXT_INTERVALS,
    }


def field_default(resource: str, field: str) -> Any:
    """The default `resource` declares for `field`: what an unset variable leaves in force."""
    return _resources()[resource].model_fields[field].default


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one process: the market-data and watch-list fields the
    environment sets (or their resources' defaults) and the deployment's own values."""

    database_url: str | None
    dagster_database_url: str | None
    source: str
    csv_dir: Path
    state_dir: Path
    dagster_home: Path | None
    partition_start: date
    default_exchange: str
    yahoo_interval: str
    requests_per_minute: float
    synthetic_interval: str
    polygon_interval: str
    ccxt_exchange: str
    ccxt_interval: str
    log_level: str = DEFAULT_LOG_LEVEL
    extra_exchanges: tuple[str, ...] = ()
    backfill_lookback_days: int = DEFAULT_BACKFILL_LOOKBACK_DAYS
    warehouse_schema: str = DEFAULT_WAREHOUSE_SCHEMA
    yahoo_replay_dir: Path | None = None
    backfill_days_per_run: int | None = None
    fallback_sources: tuple[str, ...] = ()
    polygon_key_set: bool = False
    polygon_replay_dir: Path | None = None
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

        source = (_optional(env, ENV_SOURCE) or field_default("market_data", "source")).lower()
        if source not in KNOWN_SOURCES:
            raise SettingsError(
                f"{ENV_SOURCE}={source!r} is not a known market-data source; "
                f"choose one of: {', '.join(KNOWN_SOURCES)}"
            )
        csv_text = _optional(env, ENV_CSV_DIR) or field_default("market_data", "csv_dir")
        csv_dir = Path(csv_text).expanduser().resolve()
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
            _optional(env, ENV_DEFAULT_EXCHANGE) or field_default("warehouse", "default_exchange"),
            ENV_DEFAULT_EXCHANGE,
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
        schema = warehouse_schema(env)
        synthetic_interval = _choice(env, ENV_SYNTHETIC_INTERVAL, "synthetic_interval")
        days_per_run = None
        if _optional(env, ENV_BACKFILL_DAYS_PER_RUN) is not None:
            days_per_run = _positive_int(
                env, ENV_BACKFILL_DAYS_PER_RUN, default=1, maximum=MAX_BACKFILL_DAYS_PER_RUN
            )

        return cls(
            **_providers(env, source),
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
            yahoo_interval=_choice(env, ENV_YAHOO_INTERVAL, "yahoo_interval"),
            yahoo_replay_dir=_folder(env, ENV_YAHOO_REPLAY_DIR),
            requests_per_minute=_requests_per_minute(env),
            synthetic_interval=synthetic_interval,
            backfill_days_per_run=days_per_run,
        )

    def market_data_fields(self) -> dict[str, object]:
        """The market-data resource's fields these settings set (the API key aside)."""
        return {
            "source": self.source,
            "csv_dir": str(self.csv_dir),
            "fallback_sources": list(self.fallback_sources),
            "yahoo_interval": self.yahoo_interval,
            "yahoo_replay_dir": _text(self.yahoo_replay_dir),
            "requests_per_minute": self.requests_per_minute,
            "synthetic_interval": self.synthetic_interval,
            "polygon_interval": self.polygon_interval,
            "polygon_replay_dir": _text(self.polygon_replay_dir),
            "ccxt_exchange": self.ccxt_exchange,
            "ccxt_interval": self.ccxt_interval,
            "ccxt_replay_dir": _text(self.ccxt_replay_dir),
        }


def _requests_per_minute(env: Mapping[str, str]) -> float:
    rate_text = _optional(env, ENV_REQUESTS_PER_MINUTE)
    if rate_text is None:
        return field_default("market_data", "requests_per_minute")
    try:
        rate = float(rate_text)
    except ValueError:
        raise SettingsError(f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} is not a number") from None
    if not rate > 0:
        raise SettingsError(f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} must be above zero")
    if rate > MAX_REQUESTS_PER_MINUTE:
        raise SettingsError(
            f"{ENV_REQUESTS_PER_MINUTE}={rate_text!r} is absurd: at most {MAX_REQUESTS_PER_MINUTE}"
        )
    return rate


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
    exchange = (
        _optional(env, ENV_CCXT_EXCHANGE) or field_default("market_data", "ccxt_exchange")
    ).lower()
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
        "polygon_interval": _choice(env, ENV_POLYGON_INTERVAL, "polygon_interval"),
        "polygon_replay_dir": polygon_replay,
        "ccxt_exchange": exchange,
        "ccxt_interval": _choice(env, ENV_CCXT_INTERVAL, "ccxt_interval"),
        "ccxt_replay_dir": _folder(env, ENV_CCXT_REPLAY_DIR),
    }


def _choice(env: Mapping[str, str], name: str, field: str) -> str:
    """What variable `name` sets, one of its choices; unset: the market-data `field` default."""
    choices = _choices()[name]
    value = (_optional(env, name) or field_default("market_data", field)).lower()
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


def _text(folder: Path | None) -> str | None:
    return str(folder) if folder is not None else None


def _exchange(code: str, what: str) -> str:
    try:
        return validate_mic(code)
    except UnknownExchangeError as error:
        raise SettingsError(f"{what}: {error}") from None


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def parse_date(text: str, what: str) -> date:
    """Parse an ISO date (YYYY-MM-DD), naming `what` in the error."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(f"{what}: {text!r} is not a date in the form YYYY-MM-DD") from None


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()


# --- Operations: the Dagster deployment, schedules and pools (no resource field) -------------

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
# Steps calling a market-data provider at once across all run workers (pool `market_api`).
DEFAULT_MARKET_API_POOL_LIMIT = 1
# Per-exchange schedules tick this long after the exchange's regular close.
DEFAULT_SCHEDULE_DELAY_MINUTES = 30
# The weekly catch-up looks back this many days for missing or failed partitions.
DEFAULT_CATCHUP_DAYS = 14
# Saturday 06:00 UTC: after Friday's close on every exchange.
DEFAULT_CATCHUP_CRON = "0 6 * * 6"
# The intraday schedule refreshes the open sessions this often; the minutes divide an hour, so
# the ticks fall at the same minutes of every hour.
DEFAULT_INTRADAY_MINUTES = 15
MINUTES_PER_HOUR = 60
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
    """Whether Dagster accepts `text` as a schedule's cron expression (built and thrown away)."""
    try:
        dg.ScheduleDefinition(name="cron_check", cron_schedule=text, job_name="cron_check")
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


@functools.cache
def get_operations_settings() -> OperationsSettings:
    """The process's operations settings, read from the environment on first use."""
    return OperationsSettings.from_env()


# --- Data quality and alerts: fields of the quality and alert_webhook resources ---------------

# A move of more than 10x is no threshold: every split would pass unexplained.
MAX_SPIKE_THRESHOLD = 10.0
# Beyond a day, the next session closes before the last one is due.
MAX_FRESHNESS_DELAY_MINUTES = 24 * 60
# Sources a tenth apart serve different prices, whatever the tolerance says.
MAX_CROSSCHECK_TOLERANCE = 0.1


@dataclass(frozen=True)
class QualitySettings:
    """The quality resource's thresholds and where alerts go, as the environment sets them.

    The webhook URL is a secret: only whether it is set is kept here; the alert resource reads it
    through `dagster.EnvVar`.
    """

    quality_threshold: float
    spike_threshold: float
    freshness_delay_minutes: int
    crosscheck_tolerance: float
    alert_min_severity: str
    dagster_ui_url: str
    alert_webhook_configured: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QualitySettings:
        env = os.environ if environ is None else environ
        severity = (
            _optional(env, ENV_ALERT_MIN_SEVERITY) or field_default("alert_webhook", "min_severity")
        ).upper()
        if severity not in ALERT_SEVERITIES:
            choices = ", ".join(ALERT_SEVERITIES)
            raise SettingsError(f"{ENV_ALERT_MIN_SEVERITY}={severity!r}: choose one of {choices}")
        ui_url = (
            _optional(env, ENV_DAGSTER_UI_URL) or field_default("alert_webhook", "dagster_ui_url")
        ).rstrip("/")
        if not ui_url.startswith(("http://", "https://")):
            raise SettingsError(f"{ENV_DAGSTER_UI_URL}={ui_url!r} must be an http(s):// URL")
        return cls(
            quality_threshold=_fraction(env, ENV_QUALITY_THRESHOLD, "quality_threshold", upper=1.0),
            spike_threshold=_fraction(
                env, ENV_SPIKE_THRESHOLD, "spike_threshold", upper=MAX_SPIKE_THRESHOLD
            ),
            freshness_delay_minutes=_positive_int(
                env,
                ENV_FRESHNESS_DELAY_MINUTES,
                field_default("quality", "freshness_delay_minutes"),
                MAX_FRESHNESS_DELAY_MINUTES,
            ),
            crosscheck_tolerance=_fraction(
                env,
                ENV_CROSSCHECK_TOLERANCE,
                "crosscheck_tolerance",
                upper=MAX_CROSSCHECK_TOLERANCE,
            ),
            alert_min_severity=severity,
            dagster_ui_url=ui_url,
            alert_webhook_configured=_optional(env, ENV_ALERT_WEBHOOK_URL) is not None,
        )

    def quality_fields(self) -> dict[str, object]:
        """The quality resource's fields these settings set."""
        return {
            "quality_threshold": self.quality_threshold,
            "spike_threshold": self.spike_threshold,
            "freshness_delay_minutes": self.freshness_delay_minutes,
            "crosscheck_tolerance": self.crosscheck_tolerance,
        }


def _fraction(env: Mapping[str, str], name: str, field: str, upper: float) -> float:
    """A number in (0, upper], e.g. 0.8 for 80%; unset: the quality resource's `field` default."""
    text = _optional(env, name)
    if text is None:
        return field_default("quality", field)
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
