"""Settings from the environment: defaults, and one clear error per bad value."""

from datetime import date

import pytest

from candle_pipeline.partitions import days_per_run
from candle_pipeline.providers.resilience import RetryPolicy
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.settings import (
    OperationsSettings,
    QualitySettings,
    Settings,
    SettingsError,
)

UNUSED_URL = "postgresql://unused/x"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.embedded_database
    assert settings.source == "csv"
    assert settings.warehouse_schema == "market"
    assert settings.default_exchange == "XNYS"
    assert settings.partition_start == date(2000, 1, 1)
    assert settings.backfill_days_per_run is None


@pytest.mark.parametrize(
    ("env", "days"),
    [
        # A csv folder counts as daily bars, the bundled sample (a few minute days) too.
        ({}, 366),
        ({"CANDLE_SOURCE": "yahoo"}, 366),
        ({"CANDLE_SOURCE": "yahoo", "CANDLE_YAHOO_INTERVAL": "1h"}, 5),
        ({"CANDLE_SOURCE": "synthetic"}, 5),
        ({"CANDLE_SOURCE": "synthetic", "CANDLE_SYNTHETIC_INTERVAL": "1d"}, 366),
        ({"CANDLE_BACKFILL_DAYS_PER_RUN": "30"}, 30),
        ({"CANDLE_SOURCE": "yahoo", "CANDLE_BACKFILL_DAYS_PER_RUN": "1"}, 1),
    ],
)
def test_days_per_backfill_run_follow_the_bar_width_unless_set(
    env: dict[str, str], days: int
) -> None:
    assert days_per_run(Settings.from_env(env)) == days


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLE_DATABASE_URL": "mysql://u@h/db"}, "must be a postgresql:// URL"),
        ({"CANDLE_DATABASE_URL": "not a url"}, "not a valid URL"),
        ({"CANDLE_DATABASE_URL": "postgresql://u:secret@h"}, "must name a database"),
        ({"CANDLE_SOURCE": "bloomberg"}, "not a known market-data source"),
        ({"CANDLE_CSV_DIR": "/nonexistent/folder"}, "is not a directory"),
        ({"CANDLE_PARTITION_START": "2008-02-30"}, "not a date"),
        ({"CANDLE_BACKFILL_DAYS_PER_RUN": "0"}, "must be at least 1"),
        ({"CANDLE_BACKFILL_DAYS_PER_RUN": "-1"}, "must not be negative"),
        ({"CANDLE_BACKFILL_DAYS_PER_RUN": "a week"}, "not a whole number"),
        ({"CANDLE_BACKFILL_DAYS_PER_RUN": "99999999"}, "is absurd"),
        ({"CANDLE_TIMINGS_START": "2000-01-01"}, "no longer read: market_timings shares"),
        ({"CANDLE_BACKFILL_PARTITIONS_PER_RUN": "500"}, "CANDLE_BACKFILL_DAYS_PER_RUN days"),
        ({"CANDLE_BACKFILL_LOOKBACK_DAYS": "-3"}, "must not be negative"),
        ({"CANDLE_BACKFILL_LOOKBACK_DAYS": "0"}, "must be at least 1"),
        ({"CANDLE_BACKFILL_LOOKBACK_DAYS": "a year"}, "not a whole number"),
        ({"CANDLE_WAREHOUSE_SCHEMA": "market; DROP SCHEMA public"}, "not a valid SQL name"),
        ({"CANDLE_LOG_LEVEL": "LOUD"}, "choose one of"),
        ({"CANDLE_BACKFILL_LOOKBACK_DAYS": "99999999"}, "is absurd"),
        ({"CANDLE_PROVIDER_REQUESTS_PER_MINUTE": "1e9"}, "is absurd"),
        ({"CANDLE_PROVIDER_REQUESTS_PER_MINUTE": "-5"}, "must be above zero"),
        ({"CANDLE_PARTITION_START": "2999-01-01"}, "is in the future"),
        ({"CANDLE_DEFAULT_EXCHANGE": "MOON"}, "not known to exchange_calendars"),
        ({"CANDLE_EXCHANGES": "XLON,NOPE"}, "'NOPE' is not known"),
        ({"CANDLE_FALLBACK_SOURCES": "yahoo,bloomberg"}, "'bloomberg' not a known"),
        ({"CANDLE_POLYGON_INTERVAL": "1w"}, "choose one of"),
        ({"CANDLE_CCXT_INTERVAL": "2m"}, "choose one of"),
        ({"CANDLE_CCXT_EXCHANGE": "binance; rm -rf"}, "not a ccxt exchange id"),
        ({"CANDLE_POLYGON_REPLAY_DIR": "/nonexistent/polygon"}, "is not a directory"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    """Each bad value is one SettingsError naming its variable."""
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env(env)
    assert next(iter(env)) in str(error.value) or "--" in str(error.value)
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLE_MAX_CONCURRENT_RUNS": "0"}, "must be at least 1"),
        ({"CANDLE_MAX_CONCURRENT_RUNS": "100000"}, "is absurd"),
        ({"CANDLE_MARKET_API_POOL_LIMIT": "-1"}, "must not be negative"),
        ({"CANDLE_SCHEDULE_DELAY_MINUTES": "100000"}, "is absurd"),
        ({"CANDLE_CATCHUP_CRON": "every day"}, "not a cron expression"),
        ({"CANDLE_SCHEDULES_RUNNING": "maybe"}, "use one of"),
        ({"CANDLE_INTRADAY_MINUTES": "7"}, "must divide an hour"),
        ({"CANDLE_INTRADAY_MINUTES": "0"}, "must be at least 1"),
        ({"CANDLE_INTRADAY_ALL": "all"}, "use one of"),
    ],
)
def test_bad_operations_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        OperationsSettings.from_env(env)
    assert next(iter(env)) in str(error.value)


def test_the_intraday_refresh_is_every_15_minutes_for_marked_tickers_unless_set() -> None:
    default = OperationsSettings.from_env({})
    assert (default.intraday_minutes, default.intraday_all) == (15, False)
    chosen = OperationsSettings.from_env(
        {"CANDLE_INTRADAY_MINUTES": "5", "CANDLE_INTRADAY_ALL": "true"}
    )
    assert (chosen.intraday_minutes, chosen.intraday_all) == (5, True)


@pytest.mark.parametrize("key", ["market_data", "quality", "alert_webhook"])
def test_unset_variables_leave_each_field_at_the_default_its_resource_declares(key: str) -> None:
    """The resources are where a default is written: settings read without any variable set
    build each resource with exactly the defaults it declares."""
    resource = build_resources(Settings.from_env({}), UNUSED_URL, QualitySettings.from_env({}))[key]
    fields = type(resource).model_fields
    configured = {name: getattr(resource, name) for name in fields if name != "warehouse"}
    declared = {name: field.default for name, field in fields.items() if name != "warehouse"}
    assert configured == declared


def test_a_set_variable_lands_in_its_resource_field() -> None:
    env = {"CANDLE_SOURCE": "yahoo", "CANDLE_YAHOO_INTERVAL": "1h", "CANDLE_SPIKE_THRESHOLD": "0.3"}
    resources = build_resources(Settings.from_env(env), UNUSED_URL, QualitySettings.from_env(env))
    assert (resources["market_data"].source, resources["market_data"].yahoo_interval) == (
        "yahoo",
        "1h",
    )
    assert resources["quality"].spike_threshold == 0.3
    assert resources["market_data"].retry == RetryPolicy()


def test_quality_defaults_and_the_webhook_url_is_not_kept() -> None:
    assert QualitySettings.from_env({}).crosscheck_tolerance == 0.005
    assert (
        QualitySettings.from_env({"CANDLE_CROSSCHECK_TOLERANCE": "0.01"}).crosscheck_tolerance
        == 0.01
    )
    configured = QualitySettings.from_env(
        {"CANDLE_ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/secret"}
    )
    assert configured.alert_webhook_configured
    assert "secret" not in repr(configured)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CANDLE_QUALITY_THRESHOLD": "1.5"}, "is absurd: at most 1.0"),
        ({"CANDLE_QUALITY_THRESHOLD": "0"}, "must be greater than 0"),
        ({"CANDLE_SPIKE_THRESHOLD": "half"}, "is not a number"),
        ({"CANDLE_SPIKE_THRESHOLD": "50"}, "is absurd"),
        ({"CANDLE_FRESHNESS_DELAY_MINUTES": "99999"}, "is absurd"),
        ({"CANDLE_ALERT_MIN_SEVERITY": "info"}, "choose one of WARN, ERROR"),
        ({"CANDLE_DAGSTER_UI_URL": "localhost:3000"}, "must be an http"),
        ({"CANDLE_CROSSCHECK_TOLERANCE": "0.5%"}, "is not a number"),
        ({"CANDLE_CROSSCHECK_TOLERANCE": "-0.01"}, "must be greater than 0"),
        ({"CANDLE_CROSSCHECK_TOLERANCE": "5"}, "is absurd: at most 0.1"),
    ],
)
def test_bad_quality_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        QualitySettings.from_env(env)
    assert next(iter(env)) in str(error.value)
