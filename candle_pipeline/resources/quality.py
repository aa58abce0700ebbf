"""The quality resource: the thresholds of the rules and the gate, and the stored reports."""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from candle_pipeline.domain.quality import PartitionQuality, QualityRules
from candle_pipeline.resources.warehouse import WarehouseResource
from candle_pipeline.warehouse import quality_reports
from candle_pipeline.warehouse.partition_store import load_partitions
from candle_pipeline.warehouse.tables import TABLES


class QualityResource(dg.ConfigurableResource):
    """Quality thresholds (CANDLE_QUALITY_THRESHOLD and friends) and `market.quality_reports`.

    Every database call is one transaction, retried on a new connection if the old one is lost.
    """

    warehouse: WarehouseResource
    quality_threshold: float
    spike_threshold: float
    freshness_delay_minutes: int

    def rules(self) -> QualityRules:
        return QualityRules(threshold=self.quality_threshold, spike_threshold=self.spike_threshold)

    def previous_closes(self, tickers: Sequence[str], before: date) -> pd.DataFrame:
        return self.warehouse.run(
            lambda conn: quality_reports.previous_closes(conn, tickers, before)
        )

    def corporate_actions(self, ticker_days: Sequence[tuple[date, str]]) -> pd.DataFrame:
        """The splits and dividends stored for `ticker_days` (ex-date = the day)."""
        spec = TABLES["corporate_actions"]
        return self.warehouse.run(lambda conn: load_partitions(conn, spec, list(ticker_days)))

    def write_reports(self, reports: Sequence[PartitionQuality], run_id: str) -> int:
        evaluated_at = datetime.now(UTC)
        return self.warehouse.run(
            lambda conn: quality_reports.write_reports(
                conn, reports, run_id, evaluated_at, self.quality_threshold
            )
        )

    def latest_reports(self, ticker_days: Sequence[tuple[date, str]]) -> pd.DataFrame:
        return self.warehouse.run(lambda conn: quality_reports.latest_reports(conn, ticker_days))
