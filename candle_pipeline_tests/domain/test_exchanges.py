import pytest

from candle_pipeline.domain.exchanges import (
    UnknownExchangeError,
    mic_from_symbol,
    mic_from_yahoo_exchange,
    resolve_mic,
)


@pytest.mark.parametrize(
    ("ticker", "mic"),
    [
        ("SHOP.TO", "XTSE"),
        ("OCDO.L", "XLON"),
        ("WSU.DE", "XETR"),
        ("AZT.OL", "XOSL"),
        ("ORSTED.CO", "XCSE"),
        ("WSKT.JK", "XIDX"),
        ("BTC-USD", "24/7"),
        ("EURUSD=X", "24/5"),
        ("GC=F", "CMES"),
        ("BRK-B", None),
        ("SPY", None),
    ],
)
def test_the_symbol_names_its_exchange(ticker: str, mic: str | None) -> None:
    assert mic_from_symbol(ticker) == mic


def test_yahoo_exchange_names_from_the_recorded_payloads() -> None:
    # exchangeName values as served in shared/fixtures/yahoo-http (AAPL, ABBV, CRON, OCDO.L ...).
    assert mic_from_yahoo_exchange("NMS") == "XNAS"
    assert mic_from_yahoo_exchange("NYQ") == "XNYS"
    assert mic_from_yahoo_exchange("NGM") == "XNAS"
    assert mic_from_yahoo_exchange("PCX") == "ARCX"
    assert mic_from_yahoo_exchange("TOR") == "XTSE"
    assert mic_from_yahoo_exchange("LSE") == "XLON"
    assert mic_from_yahoo_exchange("CCC") == "24/7"
    assert mic_from_yahoo_exchange("ZZZ") is None
    assert mic_from_yahoo_exchange(None) is None


def test_resolution_order() -> None:
    assert resolve_mic("AAPL", listed="xnas", provider_exchange="NYQ", default="XNYS") == (
        "XNAS",
        "listed",
    )
    assert resolve_mic("SHOP.TO", provider_exchange="NYQ", default="XNYS") == ("XTSE", "symbol")
    assert resolve_mic("AAPL", provider_exchange="NMS", default="XNYS") == ("XNAS", "provider")
    assert resolve_mic("AAPL", provider_exchange="ZZZ", default="XNYS") == ("XNYS", "default")
    assert resolve_mic("AAPL", default="XNYS") == ("XNYS", "default")
    with pytest.raises(UnknownExchangeError, match="NOPE"):
        resolve_mic("AAPL", listed="NOPE", default="XNYS")


def test_every_mapped_suffix_is_a_yahoo_suffix() -> None:
    from candle_pipeline.domain.exchanges import (  # noqa: PLC0415
        SYMBOL_SUFFIX_MICS,
        YAHOO_EXCHANGE_SUFFIXES,
    )

    assert set(SYMBOL_SUFFIX_MICS) <= YAHOO_EXCHANGE_SUFFIXES
