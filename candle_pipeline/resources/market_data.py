"""The market-data client resource: the only place that talks to a market-data source."""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import dagster as dg
from pydantic import PrivateAttr

from candle_pipeline.domain.bars import stamp
from candle_pipeline.providers.base import FetchResult, MarketDataProvider
from candle_pipeline.providers.registry import build_provider


class MarketDataResource(dg.ConfigurableResource):
    """Fetches bars from the configured source and stamps them with source and fetch time."""

    source: str
    csv_dir: str

    _provider: MarketDataProvider | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._provider = build_provider(self.source, self.csv_dir)

    @property
    def provider(self) -> MarketDataProvider:
        if self._provider is None:
            self._provider = build_provider(self.source, self.csv_dir)
        return self._provider

    def fetch(self, ticker: str, days: Sequence[date]) -> FetchResult:
        """Raw bars of `ticker` on `days`: one provider call covering them all."""
        result = self.provider.fetch_bars(ticker, days)
        raw = stamp(result.bars, source=self.provider.name, fetched_at=datetime.now(UTC))
        return FetchResult(bars=raw, requests=result.requests)
