"""Dagster resources: the warehouse connection pool and the market-data client."""
