"""The watch-list resource: which tickers we follow and which exchanges that puts in use."""

from collections.abc import Mapping

import dagster as dg
import sqlalchemy as sa

from candle_pipeline.domain.exchanges import SOURCE_PROVIDER, validate_mic
from candle_pipeline.domain.sessions import ExchangeDirectory
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse import watchlist
from candle_pipeline.warehouse.tables import watchlist as watchlist_table


class WatchlistResource(dg.ConfigurableResource):
    """Reads `market.watchlist`; tickers not on it trade on `default_exchange`. Each access is
    retried on a new connection when the database connection is lost (a server restart)."""

    warehouse: WarehouseResource
    default_exchange: str
    extra_exchanges: list[str] = []

    def exchanges(self) -> ExchangeDirectory:
        return self.warehouse.transaction(
            lambda connection: watchlist.exchange_directory(connection, self.default_exchange)
        )

    def exchanges_in_use(self) -> list[str]:
        """The default, the configured extras and every exchange a listed ticker trades on."""
        query = watchlist_table.select().with_only_columns(watchlist_table.c.exchange).distinct()
        listed = self.warehouse.transaction(
            lambda connection: connection.execute(query).scalars().all()
        )
        codes = {self.default_exchange, *self.extra_exchanges, *listed}
        return sorted(validate_mic(code) for code in codes)

    def record_provider_exchanges(self, provider_exchanges: Mapping[str, str]) -> None:
        """Remember the provider's exchange names; new_tickers_sensor acts on them."""
        self.warehouse.transaction(
            lambda connection: watchlist.record_provider_exchanges(connection, provider_exchanges)
        )

    def correct_exchanges(self) -> dict[str, tuple[str, str]]:
        """Move defaulted tickers to the exchange their provider names; returns the moves."""

        def correct(connection: sa.Connection) -> dict[str, tuple[str, str]]:
            corrections = watchlist.exchange_corrections(connection)
            for ticker, (_, mic) in corrections.items():
                watchlist.set_exchange(connection, ticker, mic, SOURCE_PROVIDER)
            return corrections

        return self.warehouse.transaction(correct)

    def entries(self) -> list[watchlist.WatchedTicker]:
        """Every ticker ever watched, removed ones included (they count on their past days)."""
        return self.warehouse.transaction(watchlist.entries)

    def active(self) -> list[watchlist.WatchedTicker]:
        return self.warehouse.transaction(
            lambda connection: watchlist.entries(connection, active_only=True)
        )
