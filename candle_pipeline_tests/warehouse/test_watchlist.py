"""The watch list against a real PostgreSQL server."""

from datetime import date

import pytest
import sqlalchemy as sa

from candle_pipeline.domain.exchanges import UnknownExchangeError
from candle_pipeline.domain.symbols import InvalidTickerError
from candle_pipeline.resources.warehouse import engine_for, ensure_tables
from candle_pipeline.settings import SP500_CONSTITUENTS
from candle_pipeline.warehouse import watchlist
from candle_pipeline.warehouse.tables import watchlist as watchlist_table


@pytest.fixture
def engine(warehouse_url: str) -> sa.Engine:
    ensure_tables(warehouse_url)
    return engine_for(warehouse_url)


def add(engine: sa.Engine, *entries: watchlist.NewTicker) -> list[str]:
    with engine.begin() as connection:
        return watchlist.add(connection, entries, "XNYS")


def listed(engine: sa.Engine) -> dict[str, watchlist.WatchedTicker]:
    with engine.connect() as connection:
        return {entry.ticker: entry for entry in watchlist.entries(connection)}


def test_add_normalises_spelling_and_resolves_exchanges(engine: sa.Engine) -> None:
    added = add(
        engine,
        watchlist.NewTicker("nvda", exchange="xnas", history_start=date(2020, 1, 2)),
        watchlist.NewTicker("BRK.B"),
        watchlist.NewTicker("SHOP.TO"),
        watchlist.NewTicker("BTC-USD"),
    )
    assert added == ["NVDA", "BRK-B", "SHOP.TO", "BTC-USD"]
    entries = listed(engine)
    assert entries["NVDA"].exchange == "XNAS"
    assert entries["NVDA"].history_start == date(2020, 1, 2)
    assert entries["BRK-B"].exchange == "XNYS"
    assert entries["SHOP.TO"].exchange == "XTSE"
    assert entries["BTC-USD"].exchange == "24/7"
    with engine.connect() as connection:
        directory = watchlist.exchange_directory(connection, "XNYS")
    assert directory.mic_for("SHOP.TO") == "XTSE"
    assert directory.mic_for("UNLISTED") == "XNYS"


@pytest.mark.parametrize(
    "garbage", ["'; DROP TABLE x;--", "", "A" * 40, "ÄPFEL", "SPY; DELETE FROM market.watchlist"]
)
def test_garbage_is_refused_and_nothing_is_written(engine: sa.Engine, garbage: str) -> None:
    with pytest.raises(InvalidTickerError):
        add(engine, watchlist.NewTicker("SPY"), watchlist.NewTicker(garbage))
    assert listed(engine) == {}
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(watchlist_table)).scalar()
            == 0
        )


def test_unknown_exchange_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(UnknownExchangeError, match="MOON"):
        add(engine, watchlist.NewTicker("SPY", exchange="MOON"))
    assert listed(engine) == {}


def test_deactivate_keeps_the_row_and_re_adding_counts_as_new(engine: sa.Engine) -> None:
    add(engine, watchlist.NewTicker("SPY"))
    first = listed(engine)["SPY"]
    add(engine, watchlist.NewTicker("SPY"))
    assert listed(engine)["SPY"].added_at == first.added_at, "re-adding an active ticker is a no-op"
    with engine.begin() as connection:
        assert watchlist.deactivate(connection, ["spy", "IBM"]) == ["SPY"]
    assert not listed(engine)["SPY"].active
    add(engine, watchlist.NewTicker("SPY"))
    again = listed(engine)["SPY"]
    assert again.active
    assert again.added_at > first.added_at


def test_sp500_import(engine: sa.Engine) -> None:
    added = add(engine, *watchlist.read_sp500(str(SP500_CONSTITUENTS)))
    assert len(added) == 503
    entries = listed(engine)
    assert len(entries) == 503
    assert "BRK-B" in entries
    assert "BF-B" in entries
    assert "BRK.B" not in entries
    assert entries["MMM"].name == "3M"


def test_the_provider_corrects_only_defaulted_exchanges(engine: sa.Engine) -> None:
    add(
        engine,
        watchlist.NewTicker("NVDA"),
        watchlist.NewTicker("IBM", exchange="XNYS"),
        watchlist.NewTicker("SHOP.TO"),
        watchlist.NewTicker("SPY"),
    )
    assert listed(engine)["NVDA"].exchange_source == "default"
    with engine.begin() as connection:
        watchlist.record_provider_exchanges(
            connection, {"NVDA": "NMS", "IBM": "NMS", "SHOP.TO": "NYQ", "SPY": "PCX"}
        )
        with_same_calendar_name = watchlist.exchange_corrections(connection)
    assert with_same_calendar_name == {
        "NVDA": ("XNYS", "XNAS"),
        "SPY": ("XNYS", "ARCX"),
    }, "listed and symbol-named exchanges are kept"
    assert listed(engine)["NVDA"].provider_exchange == "NMS"
