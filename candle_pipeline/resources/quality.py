"""The quality resource: the thresholds of the rules and the gate, and the stored reports."""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from candle_pipeline.domain.quality import PartitionQuality, QualityRules
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse import quality_reports


class QualityResource(dg.ConfigurableResource):
    """Quality thresholds (CANDLE_QUALITY_THRESHOLD and friends) and `market.quality_reports`."""

    warehouse: WarehouseResource
    quality_threshold: float
    spike_threshold: float
    freshness_delay_minutes: int

    def rules(self) -> QualityRules:
        return QualityRules(threshold=self.quality_threshold, spike_threshold=self.spike_threshold)

    def previous_closes(self, tickers: Sequence[str], before: date) -> pd.DataFrame:
        with self.warehouse.connection() as conn:
            return quality_reports.previous_closes(conn, tickers, before)

    def write_reports(self, reports: Sequence[PartitionQuality], run_id: str) -> int:
        with self.warehouse.connection() as conn:
            return quality_reports.write_reports(
                conn, reports, run_id, datetime.now(UTC), self.quality_threshold
            )

    def latest_reports(self, ticker_days: Sequence[tuple[date, str]]) -> pd.DataFrame:
        with self.warehouse.connection() as conn:
            return quality_reports.latest_reports(conn, ticker_days)
