"""Builds the provider a source name stands for."""

from __future__ import annotations

from pathlib import Path

from candle_pipeline.providers.base import MarketDataProvider
from candle_pipeline.providers.csv_files import CsvProvider
from candle_pipeline.providers.synthetic import SyntheticProvider
from candle_pipeline.settings import KNOWN_SOURCES, get_settings


def build_provider(source: str, csv_dir: str) -> MarketDataProvider:
    if source == "csv":
        return CsvProvider(root=Path(csv_dir))
    if source == "synthetic":
        settings = get_settings()
        return SyntheticProvider(
            interval=settings.synthetic_interval, mic=settings.default_exchange
        )
    raise ValueError(f"unknown market-data source {source!r}; known: {', '.join(KNOWN_SOURCES)}")
