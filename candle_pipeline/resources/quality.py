"""The quality resource: the thresholds of the validation rules, the gate and freshness."""

import dagster as dg

from candle_pipeline.domain.quality import QualityRules
from candle_pipeline.settings import DEFAULT_CROSSCHECK_TOLERANCE


class QualityResource(dg.ConfigurableResource):
    """Quality thresholds (CANDLE_QUALITY_THRESHOLD and friends)."""

    quality_threshold: float
    spike_threshold: float
    freshness_delay_minutes: int
    crosscheck_tolerance: float = DEFAULT_CROSSCHECK_TOLERANCE

    def rules(self) -> QualityRules:
        return QualityRules(threshold=self.quality_threshold, spike_threshold=self.spike_threshold)
