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


# What `tickers add` passes for tickers without a history start: today - the lookback.
DEFAULT_START = date(2025, 12, 1)


def add(
    engine: sa.Engine, *entries: watchlist.NewTicker, default_start: date = DEFAULT_START
) -> list[str]:
    with engine.begin() as connection:
        return watchlist.add(connection, entries, "XNYS", default_start)


def deactivate(engine: sa.Engine, tickers: list[str], on: date) -> list[str]:
    with engine.begin() as connection:
        return watchlist.deactivate(connection, tickers, on)


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


def test_every_ticker_gets_a_history_start_and_an_earlier_one_extends_it(
    engine: sa.Engine,
) -> None:
    add(
        engine,
        watchlist.NewTicker("SPY"),
        watchlist.NewTicker("IBM", history_start=date(2013, 10, 7)),
    )
    assert {t: e.history_start for t, e in listed(engine).items()} == {
        "SPY": DEFAULT_START,
        "IBM": date(2013, 10, 7),
    }
    first = listed(engine)["IBM"]
    # Later starts, given or by default, never shorten a history already asked for.
    add(engine, watchlist.NewTicker("IBM", history_start=date(2020, 1, 2)))
    add(engine, watchlist.NewTicker("IBM"), watchlist.NewTicker("SPY"))
    assert listed(engine)["IBM"] == first, "re-adding an active ticker changes nothing"
    assert listed(engine)["SPY"].history_start == DEFAULT_START
    add(engine, watchlist.NewTicker("SPY"), default_start=date(2024, 6, 3))
    assert listed(engine)["SPY"].history_start == date(2024, 6, 3)
    add(engine, watchlist.NewTicker("IBM", history_start=date(2000, 1, 3)))
    extended = listed(engine)["IBM"]
    assert extended.history_start == date(2000, 1, 3)
    assert extended.added_at > first.added_at, "new for the new-tickers sensor: fetch the rest"


def test_removing_sets_the_day_it_takes_effect_and_keeps_the_row(engine: sa.Engine) -> None:
    add(engine, watchlist.NewTicker("SPY", history_start=date(2013, 10, 4)))
    assert deactivate(engine, ["spy", "IBM"], date(2013, 10, 9)) == ["SPY"]
    spy = listed(engine)["SPY"]
    assert (spy.active, spy.history_start, spy.removed_on) == (
        False,
        date(2013, 10, 4),
        date(2013, 10, 9),
    )
    assert deactivate(engine, ["SPY"], date(2014, 1, 2)) == [], "removed once, from its first day"
    assert listed(engine)["SPY"].removed_on == date(2013, 10, 9)
    with engine.connect() as connection:
        assert watchlist.watch_frame(watchlist.entries(connection)).to_dict("records") == [
            {
                "ticker": "SPY",
                "exchange": "XNYS",
                "history_start": date(2013, 10, 4),
                "removed_on": date(2013, 10, 9),
            }
        ]
        assert watchlist.entries(connection, active_only=True) == []


def test_re_adding_a_removed_ticker_activates_it_as_new(engine: sa.Engine) -> None:
    add(engine, watchlist.NewTicker("SPY", history_start=date(2013, 10, 4)))
    first = listed(engine)["SPY"]
    deactivate(engine, ["SPY"], date(2013, 10, 9))
    add(engine, watchlist.NewTicker("SPY"))
    again = listed(engine)["SPY"]
    assert (again.active, again.removed_on) == (True, None)
    assert again.history_start == date(2013, 10, 4), "the earlier start stays"
    assert again.added_at > first.added_at, "new for the new-tickers sensor"


def test_a_ticker_kept_for_its_history_only_counts_until_its_removal(engine: sa.Engine) -> None:
    """The demo's sample tickers: added inactive, removed from the day after the sample."""
    kept = watchlist.NewTicker("AIG", active=False, removed_on=date(2013, 10, 12))
    add(engine, kept, default_start=date(2013, 10, 4))
    aig = listed(engine)["AIG"]
    assert (aig.active, aig.history_start, aig.removed_on) == (
        False,
        date(2013, 10, 4),
        date(2013, 10, 12),
    )
    add(engine, watchlist.NewTicker("AIG", active=False, removed_on=date(2013, 10, 12)))
    again = listed(engine)["AIG"]
    assert (again.active, again.history_start, again.removed_on) == (
        False,
        date(2013, 10, 4),
        date(2013, 10, 12),
    ), "loading the sample again changes nothing"


def test_re_adding_keeps_an_exchange_learnt_from_the_provider(engine: sa.Engine) -> None:
    add(engine, watchlist.NewTicker("NVDA"), watchlist.NewTicker("IBM", exchange="XNYS"))
    with engine.begin() as connection:
        watchlist.record_provider_exchanges(connection, {"NVDA": "NMS"})
        [(ticker, (_, mic))] = watchlist.exchange_corrections(connection).items()
        watchlist.set_exchange(connection, ticker, mic, "provider")
    add(engine, watchlist.NewTicker("NVDA", history_start=date(2020, 1, 2)))
    add(engine, watchlist.NewTicker("IBM"))
    entries = listed(engine)
    assert (entries["NVDA"].exchange, entries["NVDA"].exchange_source) == ("XNAS", "provider")
    assert (entries["IBM"].exchange, entries["IBM"].exchange_source) == ("XNYS", "listed")
    add(engine, watchlist.NewTicker("NVDA", exchange="XNYS"))
    assert listed(engine)["NVDA"].exchange == "XNYS", "a listed exchange is what the user says"


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
