"""The watch list in `market.watchlist`: which tickers we follow, on which exchange, since when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from candle_pipeline.domain.exchanges import SOURCE_DEFAULT, SOURCE_PROVIDER, resolve_mic
from candle_pipeline.domain.sessions import ExchangeDirectory
from candle_pipeline.domain.symbols import InvalidTickerError, normalize_ticker
from candle_pipeline.warehouse.tables import watchlist


@dataclass(frozen=True)
class WatchedTicker:
    ticker: str
    exchange: str
    exchange_source: str | None
    provider_exchange: str | None
    active: bool
    history_start: date | None
    name: str | None
    added_at: datetime


@dataclass(frozen=True)
class NewTicker:
    """A ticker to add: spelling and exchange still to be checked."""

    ticker: str
    exchange: str | None = None
    history_start: date | None = None
    name: str | None = None
    # False: kept for its history only (the bundled sample); never scheduled or backfilled.
    active: bool = True


def add(
    connection: sa.Connection, tickers: Sequence[NewTicker], default_exchange: str
) -> list[str]:
    """Add or re-activate `tickers` in one statement; returns their canonical spellings.

    Every spelling and exchange is validated before anything is written: one bad entry refuses
    the whole batch, naming it.
    """
    now = datetime.now(UTC)
    rows: dict[str, dict[str, object]] = {}
    for entry in tickers:
        ticker = normalize_ticker(entry.ticker)
        mic, source = resolve_mic(ticker, listed=entry.exchange, default=default_exchange)
        rows[ticker] = {
            "ticker": ticker,
            "exchange": mic,
            "exchange_source": source,
            "active": entry.active,
            "history_start": entry.history_start,
            "name": entry.name,
            "added_at": now,
        }
    if not rows:
        return []
    statement = insert(watchlist).values(list(rows.values()))
    statement = statement.on_conflict_do_update(
        index_elements=[watchlist.c.ticker],
        set_={
            "exchange": statement.excluded.exchange,
            "exchange_source": statement.excluded.exchange_source,
            "active": sa.or_(watchlist.c.active, statement.excluded.active),
            "history_start": sa.func.coalesce(
                statement.excluded.history_start, watchlist.c.history_start
            ),
            "name": sa.func.coalesce(statement.excluded.name, watchlist.c.name),
            # A re-activated ticker counts as newly added: its history is requested again.
            "added_at": sa.case(
                (watchlist.c.active, watchlist.c.added_at), else_=statement.excluded.added_at
            ),
        },
    )
    connection.execute(statement)
    return list(rows)


def deactivate(connection: sa.Connection, tickers: Sequence[str]) -> list[str]:
    """Stop scheduling `tickers`; their rows and data stay. Returns those that were active."""
    canonical = [normalize_ticker(ticker) for ticker in tickers]
    result = connection.execute(
        sa.update(watchlist)
        .where(watchlist.c.ticker.in_(canonical), watchlist.c.active)
        .values(active=False)
        .returning(watchlist.c.ticker)
    )
    return [row.ticker for row in result]


def record_provider_exchanges(
    connection: sa.Connection, provider_exchanges: Mapping[str, str]
) -> None:
    """Remember the exchange name the provider gave for each ticker (Yahoo's `NMS`, ...)."""
    for ticker, name in provider_exchanges.items():
        connection.execute(
            sa.update(watchlist)
            .where(
                watchlist.c.ticker == ticker, watchlist.c.provider_exchange.is_distinct_from(name)
            )
            .values(provider_exchange=name)
        )


def exchange_corrections(connection: sa.Connection) -> dict[str, tuple[str, str]]:
    """Active tickers whose exchange was only the default but the provider names another.

    Returns {ticker: (default MIC, provider's MIC)}.
    """
    query = sa.select(
        watchlist.c.ticker, watchlist.c.exchange, watchlist.c.provider_exchange
    ).where(
        watchlist.c.active,
        watchlist.c.provider_exchange.is_not(None),
        sa.or_(
            watchlist.c.exchange_source == SOURCE_DEFAULT, watchlist.c.exchange_source.is_(None)
        ),
    )
    corrections = {}
    for ticker, old, provider_exchange in connection.execute(query).tuples():
        new, source = resolve_mic(ticker, provider_exchange=provider_exchange, default=old)
        if source == SOURCE_PROVIDER and new != old:
            corrections[ticker] = (old, new)
    return corrections


def set_exchange(connection: sa.Connection, ticker: str, mic: str, source: str) -> None:
    connection.execute(
        sa.update(watchlist)
        .where(watchlist.c.ticker == ticker)
        .values(exchange=mic, exchange_source=source)
    )


def entries(connection: sa.Connection, active_only: bool = False) -> list[WatchedTicker]:
    query = sa.select(watchlist).order_by(watchlist.c.added_at, watchlist.c.ticker)
    if active_only:
        query = query.where(watchlist.c.active)
    return [WatchedTicker(**row._mapping) for row in connection.execute(query)]


def exchange_directory(connection: sa.Connection, default_exchange: str) -> ExchangeDirectory:
    """Every watched ticker's exchange; tickers not on the list trade on `default_exchange`."""
    rows = connection.execute(sa.select(watchlist.c.ticker, watchlist.c.exchange))
    return ExchangeDirectory(default=default_exchange, by_ticker=dict(rows.tuples().all()))


def read_sp500(path: str, history_start: date | None = None) -> list[NewTicker]:
    """The constituents file (`Symbol,Security,...`) as tickers to add."""
    frame = pd.read_csv(path, dtype=str)
    if "Symbol" not in frame.columns:
        raise InvalidTickerError(f"{path}: no Symbol column")
    names = frame["Security"] if "Security" in frame.columns else [None] * len(frame)
    return [
        NewTicker(ticker=symbol, history_start=history_start, name=name)
        for symbol, name in zip(frame["Symbol"], names, strict=True)
    ]
