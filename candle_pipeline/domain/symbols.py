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


# Yahoo's suffixes for listings outside the US: `SHOP.TO`, `VOW3.DE`, `7203.T`. A dot followed by
# anything else is a US share class, which Yahoo spells with a dash (`BRK.B` -> `BRK-B`).
YAHOO_EXCHANGE_SUFFIXES = frozenset(
    {
        "AS", "AT", "AX", "BA", "BD", "BE", "BK", "BM", "BO", "BR", "CA", "CN", "CO", "CR", "DE",
        "DU", "F", "HA", "HE", "HK", "HM", "IC", "IL", "IR", "IS", "JK", "JO", "KL", "KQ", "KS",
        "KW", "L", "LS", "MC", "ME", "MI", "MU", "MX", "NE", "NS", "NX", "NZ", "OL", "PA", "PR",
        "QA", "RG", "SA", "SG", "SI", "SN", "SR", "SS", "ST", "SW", "SZ", "T", "TA", "TI", "TL",
        "TO", "TW", "TWO", "V", "VI", "VS", "WA", "XA",
    }
)  # fmt: skip
MAX_SHARE_CLASS_LENGTH = 2


def yahoo_symbol(ticker: str) -> str:
    """How Yahoo spells `ticker`: share classes with a dash, exchange suffixes kept.

    `BRK.B` -> `BRK-B`, `BF.B` -> `BF-B`, `SHOP.TO` -> `SHOP.TO`, `BTC-USD` and `^GSPC` unchanged.
    Anything else with a dot is refused before a request is made.
    """
    canonical = normalize_ticker(ticker)
    base, dot, suffix = canonical.rpartition(".")
    if not dot or suffix in YAHOO_EXCHANGE_SUFFIXES:
        return canonical
    if "." not in base and suffix.isalpha() and len(suffix) <= MAX_SHARE_CLASS_LENGTH:
        return f"{base}-{suffix}"
    raise InvalidTickerError(
        f"{canonical!r} has no Yahoo spelling: '.{suffix}' is neither a share class "
        "(BRK.B) nor a Yahoo exchange suffix (.TO, .L, .DE, ...)"
    )
