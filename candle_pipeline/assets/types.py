"""The keys of the per-ticker assets, and their Dagster types from their pandera contracts
(`domain.schemas`).

The UI shows each asset's columns and checks; Dagster validates every output against its type.
"""

import dagster as dg
from dagster_pandera import pandera_schema_to_dagster_type

from candle_pipeline.domain.schemas import CandlesSchema, RawQuotesSchema, ValidatedQuotesSchema

RAW_QUOTES = dg.AssetKey("raw_quotes")
VALIDATED_QUOTES = dg.AssetKey("validated_quotes")
CANDLES = dg.AssetKey("candles")

RAW_QUOTES_TYPE = pandera_schema_to_dagster_type(RawQuotesSchema)
VALIDATED_QUOTES_TYPE = pandera_schema_to_dagster_type(ValidatedQuotesSchema)
CANDLES_TYPE = pandera_schema_to_dagster_type(CandlesSchema)
