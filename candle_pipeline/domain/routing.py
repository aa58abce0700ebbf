"""Which market-data source fetches each ticker, and in which order sources are tried."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from candle_pipeline.domain.symbols import is_crypto_pair

# The market-data sources, as CANDLE_SOURCE and a watch-list entry's provider name them.
KNOWN_SOURCES = ("csv", "yahoo", "synthetic", "polygon", "ccxt")
# The source a crypto pair (`BTC/USDT`) is routed to when its watch-list entry names none.
CRYPTO_SOURCE = "ccxt"


def route(
    listed: Mapping[str, str | None], default_source: str, crypto_source: str
) -> dict[str, str]:
    """Each ticker's source: the one its watch-list entry names (`tickers add --provider`), else
    `crypto_source` for a crypto pair (`BTC/USDT`), else `default_source` (CANDLE_SOURCE)."""
    return {
        ticker: provider or (crypto_source if is_crypto_pair(ticker) else default_source)
        for ticker, provider in listed.items()
    }


def source_chain(primary: str, fallbacks: Sequence[str]) -> list[str]:
    """The sources a ticker is asked, in order: its own, then each fallback once."""
    return [primary, *(source for source in dict.fromkeys(fallbacks) if source != primary)]


def reference_chain(chain: Sequence[str], excluded: Collection[str]) -> list[str]:
    """The sources a ticker's bars are cross-checked against, in the order of its `chain`:
    every source but the `excluded` ones (those that served the bars, or failed on the ticker
    in the same run), named as CANDLE_SOURCE spells them or as their rows do (`ccxt:binance`
    for `ccxt`)."""
    return [
        source
        for source in chain
        if not any(name == source or name.startswith(f"{source}:") for name in excluded)
    ]
