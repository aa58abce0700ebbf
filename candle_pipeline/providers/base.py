"""The one small interface every market-data source implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import pandas as pd


class ProviderError(RuntimeError):
    """A provider could not deliver bars for a request; the message names ticker and cause."""


@dataclass(frozen=True)
class FetchResult:
    """Bars in the canonical columns (domain.bars.BAR_COLUMNS) and the requests it took."""

    bars: pd.DataFrame
    requests: int


class MarketDataProvider(Protocol):
    """Returns the bars of one ticker on the given trading days, as finely as it has them."""

    name: str

    def fetch_bars(self, ticker: str, days: Sequence[date]) -> FetchResult: ...
