"""Ticker spelling: the one place a symbol is validated and normalised.

Nothing that fails here reaches SQL, a partition key or a provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from candle_pipeline.domain.exchanges import EXCHANGE_PAIR, YAHOO_EXCHANGE_SUFFIXES

MAX_TICKER_LENGTH = 20
# Letters and digits, optionally joined by '.', '-' or '=' (BRK.B, BRK-B, BTC-USD, EURUSD=X,
# GC=F), optionally led by '^' for an index (^GSPC).
TICKER_PATTERN = re.compile(r"\^?[A-Z0-9]+(?:[.\-=][A-Z0-9]+)*(?:=[A-Z])?")


# A dot followed by anything but a Yahoo exchange suffix is a share class (`BRK.B`), which Yahoo,
# and so this project, spells with a dash (`BRK-B`).
MAX_SHARE_CLASS_LENGTH = 2


class InvalidTickerError(ValueError):
    """A ticker that is not a market symbol; the message quotes it safely."""


def normalize_ticker(raw: str) -> str:
    """The canonical spelling of `raw`: trimmed, upper-case, as Yahoo spells it.

    `BRK.B` -> `BRK-B`, `BF.B` -> `BF-B`; exchange suffixes (`SHOP.TO`, `7203.T`), `BTC-USD`,
    `^GSPC` and crypto pairs (`BTC/USDT`) unchanged. Anything else, including a dot that is
    neither, is refused with InvalidTickerError before it reaches SQL, a partition key or a
    provider.
    """
    if not isinstance(raw, str):
        raise InvalidTickerError(f"a ticker must be text, got {type(raw).__name__}")
    ticker = raw.strip().upper()
    if not ticker:
        raise InvalidTickerError("a ticker must not be empty")
    if len(ticker) > MAX_TICKER_LENGTH:
        raise InvalidTickerError(
            f"ticker {ticker[:MAX_TICKER_LENGTH]!r}... is longer than "
            f"{MAX_TICKER_LENGTH} characters"
        )
    if ticker.isascii() and EXCHANGE_PAIR.fullmatch(ticker):
        return ticker
    if not ticker.isascii() or not TICKER_PATTERN.fullmatch(ticker):
        raise InvalidTickerError(
            f"{raw!r} is not a ticker: use letters and digits, joined by '.', '-' or '=', "
            "or a crypto pair such as BTC/USDT"
        )
    base, dot, suffix = ticker.rpartition(".")
    if not dot or suffix in YAHOO_EXCHANGE_SUFFIXES:
        return ticker
    if "." not in base and suffix.isalpha() and len(suffix) <= MAX_SHARE_CLASS_LENGTH:
        return f"{base}-{suffix}"
    raise InvalidTickerError(
        f"{ticker!r} has no Yahoo spelling: '.{suffix}' is neither a share class "
        "(BRK.B) nor a Yahoo exchange suffix (.TO, .L, .DE, ...)"
    )


def normalize_tickers(raw: Iterable[str]) -> list[str]:
    """Each ticker normalised, duplicates dropped, first spelling order kept."""
    return list(dict.fromkeys(normalize_ticker(item) for item in raw))


def is_crypto_pair(ticker: str) -> bool:
    """A pair spelled as crypto exchanges spell it (`BTC/USDT`), fetched from an exchange."""
    return EXCHANGE_PAIR.fullmatch(ticker) is not None
