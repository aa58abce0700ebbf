"""The resources every asset needs, built in one place for definitions, the CLI and tests."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from candle_pipeline.io_managers.postgres import PostgresPartitionIOManager
from candle_pipeline.resources.alerts import AlertWebhookResource
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.quality import QualityResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.settings import (
    ENV_ALERT_WEBHOOK_URL,
    ENV_DATABASE_URL,
    ENV_POLYGON_API_KEY,
    QualitySettings,
    Settings,
    get_quality_settings,
)


def build_resources(
    settings: Settings, database_url: str | None = None, quality: QualitySettings | None = None
) -> dict[str, object]:
    """Resources for `settings`; the database URL comes from the environment unless given."""
    quality = quality or get_quality_settings()
    warehouse = build_warehouse(settings, database_url)
    return {
        "warehouse": warehouse,
        "warehouse_io_manager": PostgresPartitionIOManager(warehouse=warehouse),
        "market_data": MarketDataResource(
            source=settings.source,
            csv_dir=str(settings.csv_dir),
            warehouse=warehouse,
            yahoo_interval=settings.yahoo_interval,
            yahoo_replay_dir=_text(settings.yahoo_replay_dir),
            requests_per_minute=settings.requests_per_minute,
            synthetic_interval=settings.synthetic_interval,
            fallback_sources=list(settings.fallback_sources),
            # Read by Dagster from the environment when the resource is built; never config.
            polygon_api_key=dg.EnvVar(ENV_POLYGON_API_KEY) if settings.polygon_key_set else None,
            polygon_interval=settings.polygon_interval,
            polygon_replay_dir=_text(settings.polygon_replay_dir),
            ccxt_exchange=settings.ccxt_exchange,
            ccxt_interval=settings.ccxt_interval,
            ccxt_replay_dir=_text(settings.ccxt_replay_dir),
        ),
        "quality": QualityResource(
            quality_threshold=quality.quality_threshold,
            spike_threshold=quality.spike_threshold,
            freshness_delay_minutes=quality.freshness_delay_minutes,
            crosscheck_tolerance=quality.crosscheck_tolerance,
        ),
        "alert_webhook": AlertWebhookResource(
            url=dg.EnvVar(ENV_ALERT_WEBHOOK_URL) if quality.alert_webhook_configured else None,
            dagster_ui_url=quality.dagster_ui_url,
            min_severity=quality.alert_min_severity,
        ),
    }


def build_warehouse(settings: Settings, database_url: str | None = None) -> WarehouseResource:
    """The warehouse resource for `settings`, of definitions and commands alike; the database URL
    comes from the environment unless given."""
    return WarehouseResource(
        database_url=database_url or dg.EnvVar(ENV_DATABASE_URL),
        default_exchange=settings.default_exchange,
        extra_exchanges=list(settings.extra_exchanges),
    )


def _text(folder: Path | None) -> str | None:
    return str(folder) if folder is not None else None
