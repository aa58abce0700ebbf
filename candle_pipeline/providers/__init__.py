"""Market-data sources, each behind the MarketDataProvider protocol."""
