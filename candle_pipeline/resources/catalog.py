"""The resources every asset needs, built in one place for definitions, the CLI and tests."""

from __future__ import annotations

import dagster as dg

from candle_pipeline.io_managers.postgres import PostgresPartitionIOManager
from candle_pipeline.resources.market_data import MarketDataResource
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.resources.watchlist import WatchlistResource
from candle_pipeline.settings import ENV_DATABASE_URL, Settings


def build_resources(settings: Settings, database_url: str | None = None) -> dict[str, object]:
    """Resources for `settings`; the database URL comes from the environment unless given."""
    warehouse = WarehouseResource(database_url=database_url or dg.EnvVar(ENV_DATABASE_URL))
    return {
        "warehouse": warehouse,
        "warehouse_io_manager": PostgresPartitionIOManager(warehouse=warehouse),
        "market_data": MarketDataResource(
            source=settings.source,
            csv_dir=str(settings.csv_dir),
            warehouse=warehouse,
            yahoo_interval=settings.yahoo_interval,
            yahoo_replay_dir=str(settings.yahoo_replay_dir) if settings.yahoo_replay_dir else None,
            requests_per_minute=settings.requests_per_minute,
        ),
        "watchlist": WatchlistResource(
            warehouse=warehouse,
            default_exchange=settings.default_exchange,
            extra_exchanges=list(settings.extra_exchanges),
        ),
    }
