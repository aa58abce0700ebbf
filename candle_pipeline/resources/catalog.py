"""The resources every asset needs, built in one place for definitions, the CLI and tests.

Each field the environment sets comes from `settings`; every other field keeps the default its
resource declares. Secrets (the database URL, the Polygon key, the alert URLs) are `dg.EnvVar`s:
Dagster reads them where the resource is built, and the launchpad shows only their names.
"""

from __future__ import annotations

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
            **settings.market_data_fields(),
            warehouse=warehouse,
            polygon_api_key=dg.EnvVar(ENV_POLYGON_API_KEY) if settings.polygon_key_set else None,
        ),
        "quality": QualityResource(**quality.quality_fields()),
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
