"""Asset checks: the quality checks of `validated_quotes` and the freshness of `candles`."""

import warnings

import dagster as dg

# Partitioned asset checks (one `quality_score` result per ticker-day) are a preview feature of
# Dagster 1.13; we rely on it knowingly (the version is pinned), so the warning is noise for users.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
