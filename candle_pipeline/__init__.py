"""candle-pipeline: a Dagster pipeline that keeps a PostgreSQL warehouse of market data correct."""
