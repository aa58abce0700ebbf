"""The quality resource: the thresholds of the validation rules, the gate, freshness and the
cross-check, with their defaults (each read from its CANDLE_* variable by `settings`)."""

import dagster as dg

from candle_pipeline.domain.quality import QualityRules


class QualityResource(dg.ConfigurableResource):
    """Quality thresholds (CANDLE_QUALITY_THRESHOLD and friends)."""

    # A ticker-day whose quality score is below this never reaches `candles`.
    quality_threshold: float = 0.8
    # A bar is a spike when a price moves more than this fraction from the previous close.
    spike_threshold: float = 0.5
    # The latest trading day's candles are due this long after the exchange's regular close.
    freshness_delay_minutes: int = 120
    # Two sources' closes of a ticker-day differing by more than this fraction are a mismatch.
    crosscheck_tolerance: float = 0.005

    def rules(self) -> QualityRules:
        return QualityRules(threshold=self.quality_threshold, spike_threshold=self.spike_threshold)
