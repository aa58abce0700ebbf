"""Which exchange (ISO 10383 MIC, as exchange_calendars names them) a ticker trades on.

A ticker's exchange comes, in order, from the watch list, from the symbol itself (Yahoo's exchange
suffixes such as `.TO` or `.L`, `=X` currencies, `=F` futures, crypto pairs), from the provider's
metadata (Yahoo's `exchangeName`, e.g. NMS or NYQ), or from the configured default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import exchange_calendars as xcals

# 24/7 markets (crypto) and 24/5 markets (currencies) are calendars of exchange_calendars too.
ALWAYS_OPEN = "24/7"
WEEKDAYS_ALWAYS_OPEN = "24/5"
FUTURES = "CMES"

# Yahoo's `meta.exchangeName` -> MIC.
YAHOO_EXCHANGE_MICS: Mapping[str, str] = {
    "NMS": "XNAS",  # Nasdaq Global Select
    "NGM": "XNAS",  # Nasdaq Global Market
    "NCM": "XNAS",  # Nasdaq Capital Market
    "NAS": "XNAS",
    "NYQ": "XNYS",
    "NYS": "XNYS",
    "PCX": "ARCX",  # NYSE Arca
    "ASE": "XASE",  # NYSE American
    "BTS": "BATS",
    "PNK": "XNYS",  # OTC Markets: no calendar of its own; trades on the NYSE's days and hours
    "TOR": "XTSE",
    "VAN": "XTSX",
    "LSE": "XLON",
    "GER": "XETR",
    "FRA": "XFRA",
    "OSL": "XOSL",
    "CPH": "XCSE",
    "JKT": "XIDX",
    "HKG": "XHKG",
    "PAR": "XPAR",
    "AMS": "XAMS",
    "JPX": "XTKS",
    "ASX": "XASX",
    "EBS": "XSWX",
    "MIL": "XMIL",
    "MCE": "XMAD",
    "STO": "XSTO",
    "HEL": "XHEL",
    "SES": "XSES",
    "KSC": "XKRX",
    "BSE": "XBOM",
    "SAO": "BVMF",
    "MEX": "XMEX",
    "ISE": "XDUB",
    "VIE": "XWBO",
    "BRU": "XBRU",
    "LIS": "XLIS",
    "NZE": "XNZE",
    "CCC": ALWAYS_OPEN,  # crypto
    "CCY": WEEKDAYS_ALWAYS_OPEN,  # currencies
    "CMX": FUTURES,
    "NYM": FUTURES,
    "CBT": FUTURES,
    "CME": FUTURES,
}

# Yahoo's symbol suffixes (`SHOP.TO`, `VOD.L`) -> MIC.
SYMBOL_SUFFIX_MICS: Mapping[str, str] = {
    "TO": "XTSE",
    "V": "XTSX",
    "L": "XLON",
    "DE": "XETR",
    "F": "XFRA",
    "OL": "XOSL",
    "CO": "XCSE",
    "JK": "XIDX",
    "HK": "XHKG",
    "PA": "XPAR",
    "AS": "XAMS",
    "T": "XTKS",
    "AX": "XASX",
    "SW": "XSWX",
    "MI": "XMIL",
    "MC": "XMAD",
    "ST": "XSTO",
    "HE": "XHEL",
    "SI": "XSES",
    "KS": "XKRX",
    "BO": "XBOM",
    "SA": "BVMF",
    "MX": "XMEX",
    "IR": "XDUB",
    "VI": "XWBO",
    "BR": "XBRU",
    "LS": "XLIS",
    "NZ": "XNZE",
}

# Every suffix Yahoo uses for a listing outside the US (a superset of those we map to a calendar).
YAHOO_EXCHANGE_SUFFIXES = frozenset(
    {
        "AS", "AT", "AX", "BA", "BD", "BE", "BK", "BM", "BO", "BR", "CA", "CN", "CO", "CR", "DE",
        "DU", "F", "HA", "HE", "HK", "HM", "IC", "IL", "IR", "IS", "JK", "JO", "KL", "KQ", "KS",
        "KW", "L", "LS", "MC", "ME", "MI", "MU", "MX", "NE", "NS", "NX", "NZ", "OL", "PA", "PR",
        "QA", "RG", "SA", "SG", "SI", "SN", "SR", "SS", "ST", "SW", "SZ", "T", "TA", "TI", "TL",
        "TO", "TW", "TWO", "V", "VI", "VS", "WA", "XA",
    }
)  # fmt: skip

CRYPTO_QUOTES = ("USD", "USDT", "USDC", "EUR", "GBP", "JPY", "BTC", "ETH")
CRYPTO_PAIR = re.compile(rf"[A-Z0-9]{{2,10}}-(?:{'|'.join(CRYPTO_QUOTES)})")
# An exchange's own spelling of a pair (ccxt's `BTC/USDT`): a 24/7 market whatever its quote.
EXCHANGE_PAIR = re.compile(r"[A-Z0-9]{2,10}/[A-Z0-9]{2,10}")


class UnknownExchangeError(ValueError):
    """An exchange code that exchange_calendars does not know."""


def validate_mic(mic: str) -> str:
    """The MIC, upper-cased, if exchange_calendars has its calendar; else a clear error."""
    code = mic.strip().upper()
    if code not in xcals.get_calendar_names(include_aliases=True):
        raise UnknownExchangeError(
            f"exchange {mic!r} is not known to exchange_calendars (use a MIC such as XNYS)"
        )
    return code


def mic_from_symbol(ticker: str) -> str | None:
    """The exchange a Yahoo-spelled symbol names by itself, if it does."""
    if ticker.endswith("=X"):
        return WEEKDAYS_ALWAYS_OPEN
    if ticker.endswith("=F"):
        return FUTURES
    if CRYPTO_PAIR.fullmatch(ticker) or EXCHANGE_PAIR.fullmatch(ticker):
        return ALWAYS_OPEN
    base, dot, suffix = ticker.rpartition(".")
    if dot and base:
        return SYMBOL_SUFFIX_MICS.get(suffix)
    return None


def mic_from_yahoo_exchange(exchange_name: str | None) -> str | None:
    """The MIC of Yahoo's `exchangeName`, or None when we do not know it."""
    if not exchange_name:
        return None
    return YAHOO_EXCHANGE_MICS.get(exchange_name.strip().upper())


# Where a ticker's exchange came from, strongest first.
SOURCE_LISTED = "listed"
SOURCE_SYMBOL = "symbol"
SOURCE_PROVIDER = "provider"
SOURCE_DEFAULT = "default"


def resolve_mic(
    ticker: str,
    *,
    listed: str | None = None,
    provider_exchange: str | None = None,
    default: str,
) -> tuple[str, str]:
    """A ticker's exchange and where it came from.

    The watch list (`listed`) wins, then the symbol itself, then the provider's metadata, then
    the default.
    """
    candidates = (
        (listed, SOURCE_LISTED),
        (mic_from_symbol(ticker), SOURCE_SYMBOL),
        (mic_from_yahoo_exchange(provider_exchange), SOURCE_PROVIDER),
        (default, SOURCE_DEFAULT),
    )
    mic, source = next((mic, source) for mic, source in candidates if mic)
    return validate_mic(mic), source
