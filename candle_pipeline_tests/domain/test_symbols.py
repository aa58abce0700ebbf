import pytest

from candle_pipeline.domain.routing import route, source_chain
from candle_pipeline.domain.symbols import (
    InvalidTickerError,
    normalize_ticker,
    normalize_tickers,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("spy", "SPY"),
        (" BRK.B ", "BRK-B"),
        ("bf.b", "BF-B"),
        ("VOD.L", "VOD.L"),
        ("7203.T", "7203.T"),
        ("BRK-B", "BRK-B"),
        ("BTC-USD", "BTC-USD"),
        ("btc/usdt", "BTC/USDT"),
        ("EURUSD=X", "EURUSD=X"),
        ("GC=F", "GC=F"),
        ("^GSPC", "^GSPC"),
        ("SHOP.TO", "SHOP.TO"),
    ],
)
def test_real_symbols_are_accepted_and_upper_cased(raw: str, expected: str) -> None:
    assert normalize_ticker(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("'; DROP TABLE x;--", "is not a ticker"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("A" * 40, "longer than 20"),
        ("ÄPFEL", "is not a ticker"),
        ("SPY|IBM", "is not a ticker"),
        ("SP Y", "is not a ticker"),
        ("..", "is not a ticker"),
        ("../ETC/PASSWD", "is not a ticker"),
        ("BTC/USDT/X", "is not a ticker"),
    ],
)
def test_garbage_is_refused_with_a_clear_message(raw: str, message: str) -> None:
    with pytest.raises(InvalidTickerError, match=message):
        normalize_ticker(raw)


def test_non_text_is_refused() -> None:
    with pytest.raises(InvalidTickerError, match="must be text"):
        normalize_ticker(42)  # type: ignore[arg-type]


def test_duplicates_collapse_keeping_first_order() -> None:
    assert normalize_tickers(["ibm", "SPY", "IBM "]) == ["IBM", "SPY"]


@pytest.mark.parametrize(
    ("ticker", "spelled"),
    [
        ("BRK.B", "BRK-B"),
        ("bf.b", "BF-B"),
        ("BRK-B", "BRK-B"),
        ("SHOP.TO", "SHOP.TO"),
        ("OCDO.L", "OCDO.L"),
        ("WSU.DE", "WSU.DE"),
        ("7203.T", "7203.T"),
        ("0P000071W8.TO", "0P000071W8.TO"),
        ("BTC-USD", "BTC-USD"),
        ("EURUSD=X", "EURUSD=X"),
        ("^GSPC", "^GSPC"),
        ("NVDA", "NVDA"),
    ],
)
def test_yahoo_spelling(ticker: str, spelled: str) -> None:
    assert normalize_ticker(ticker) == spelled


@pytest.mark.parametrize(
    ("ticker", "message"),
    [
        ("ABC.XYZW", r"'\.XYZW' is neither a share class"),
        ("A.B.C", r"'\.C' is neither a share class"),
        ("SPY|IBM", "is not a ticker"),
    ],
)
def test_no_yahoo_spelling_is_refused(ticker: str, message: str) -> None:
    with pytest.raises(InvalidTickerError, match=message):
        normalize_ticker(ticker)


def test_routing_follows_the_watch_list_then_the_rule() -> None:
    listed = {"SPY": None, "BTC/USDT": None, "BTC-USD": None, "NVDA": "polygon", "ETH/BTC": "csv"}
    assert route(listed, "yahoo", "ccxt") == {
        "SPY": "yahoo",
        "BTC/USDT": "ccxt",  # an exchange's spelling of a pair
        "BTC-USD": "yahoo",  # Yahoo's spelling stays with CANDLE_SOURCE
        "NVDA": "polygon",
        "ETH/BTC": "csv",
    }
    assert source_chain("polygon", ["yahoo", "polygon", "yahoo", "csv"]) == [
        "polygon",
        "yahoo",
        "csv",
    ]
