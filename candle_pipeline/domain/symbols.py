"""Ticker spelling: the one place a symbol is validated and normalised.

Nothing that fails here reaches SQL, a partition key or a provider.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from candle_pipeline.domain.exchanges import SYMBOL_SUFFIX_MICS

MAX_TICKER_LENGTH = 20
# Letters and digits, optionally joined by '.', '-' or '=' (BRK.B, BRK-B, BTC-USD, EURUSD=X,
# GC=F), optionally led by '^' for an index (^GSPC).
TICKER_PATTERN = re.compile(r"\^?[A-Z0-9]+(?:[.\-=][A-Z0-9]+)*(?:=[A-Z])?")


# `BRK.B` names share class B; Yahoo (and so this project) spells it `BRK-B`. A one-letter suffix
# that is an exchange (`VOD.L`, `7203.T`) keeps its dot.
CLASS_SHARE = re.compile(r"(?P<base>[A-Z0-9]+)\.(?P<share_class>[A-Z])")
ONE_LETTER_EXCHANGE_SUFFIXES = frozenset(s for s in SYMBOL_SUFFIX_MICS if len(s) == 1)


class InvalidTickerError(ValueError):
    """A ticker that is not a market symbol; the message quotes it safely."""


def normalize_ticker(raw: str) -> str:
    """The canonical spelling of `raw` (trimmed, upper-case, Yahoo's `BRK-B` for `BRK.B`).

    Anything else is refused with InvalidTickerError.
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
    if not ticker.isascii() or not TICKER_PATTERN.fullmatch(ticker):
        raise InvalidTickerError(
            f"{raw!r} is not a ticker: use letters and digits, joined by '.', '-' or '='"
        )
    share = CLASS_SHARE.fullmatch(ticker)
    if share and share["share_class"] not in ONE_LETTER_EXCHANGE_SUFFIXES:
        return f"{share['base']}-{share['share_class']}"
    return ticker


def normalize_tickers(raw: Iterable[str]) -> list[str]:
    """Each ticker normalised, duplicates dropped, first spelling order kept."""
    return list(dict.fromkeys(normalize_ticker(item) for item in raw))
