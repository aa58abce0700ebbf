"""The watch list in `market.watchlist`: which tickers we follow, on which exchange, from which
day and until when (a removed ticker keeps its past days and stops counting from its removal)."""

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
from candle_pipeline.domain.ticker_days import WATCH_COLUMNS
from candle_pipeline.warehouse.tables import watchlist


@dataclass(frozen=True)
class WatchedTicker:
    ticker: str
    exchange: str
    exchange_source: str | None
    provider_exchange: str | None
    active: bool
    history_start: date | None
    removed_on: date | None
    name: str | None
    added_at: datetime
    provider: str | None = None
    # Refreshed during its session by the intraday schedule.
    intraday: bool = False


@dataclass(frozen=True)
class NewTicker:
    """A ticker to add: spelling and exchange still to be checked."""

    ticker: str
    exchange: str | None = None
    history_start: date | None = None
    name: str | None = None
    # False: kept for its history only (the bundled sample), counted until `removed_on`.
    active: bool = True
    removed_on: date | None = None
    # The market-data source to fetch it from (None: the routing rule).
    provider: str | None = None
    intraday: bool = False


def add(
    connection: sa.Connection,
    tickers: Sequence[NewTicker],
    default_exchange: str,
    default_history_start: date,
) -> list[str]:
    """Add or re-activate `tickers` in one statement; returns their canonical spellings.

    Every spelling and exchange is validated before anything is written: one bad entry refuses
    the whole batch, naming it. A ticker without a history start gets `default_history_start`;
    a ticker already on the list keeps the earlier of its two history starts (an earlier one
    extends its history) and, once active again, is no longer removed.
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
            "history_start": entry.history_start or default_history_start,
            "removed_on": None if entry.active else entry.removed_on,
            "name": entry.name,
            "added_at": now,
            "provider": entry.provider,
            "intraday": entry.intraday,
        }
    if not rows:
        return []
    statement = insert(watchlist).values(list(rows.values()))
    defaulted = statement.excluded.exchange_source == SOURCE_DEFAULT
    statement = statement.on_conflict_do_update(
        index_elements=[watchlist.c.ticker],
        set_={
            # An exchange known better than the default (listed, from the symbol, from the
            # provider) is not undone by a re-add that names none.
            "exchange": sa.case(
                (defaulted, watchlist.c.exchange), else_=statement.excluded.exchange
            ),
            "exchange_source": sa.case(
                (defaulted, watchlist.c.exchange_source),
                else_=statement.excluded.exchange_source,
            ),
            "active": sa.or_(watchlist.c.active, statement.excluded.active),
            "history_start": sa.func.least(
                statement.excluded.history_start, watchlist.c.history_start
            ),
            "removed_on": sa.case(
                (sa.or_(watchlist.c.active, statement.excluded.active), None),
                else_=sa.func.coalesce(statement.excluded.removed_on, watchlist.c.removed_on),
            ),
            "name": sa.func.coalesce(statement.excluded.name, watchlist.c.name),
            # A re-add naming a provider moves the ticker to it; one naming none keeps it.
            "provider": sa.func.coalesce(statement.excluded.provider, watchlist.c.provider),
            # Marked for intraday by any add that asks for it (`tickers add --intraday`).
            "intraday": sa.or_(watchlist.c.intraday, statement.excluded.intraday),
            # A re-activated ticker, or one whose history now starts earlier, counts as newly
            # added: new_tickers_sensor requests its history again (complete days cost no call).
            "added_at": sa.case(
                (
                    sa.and_(
                        watchlist.c.active,
                        statement.excluded.history_start >= watchlist.c.history_start,
                    ),
                    watchlist.c.added_at,
                ),
                else_=statement.excluded.added_at,
            ),
        },
    )
    connection.execute(statement)
    return list(rows)


def deactivate(connection: sa.Connection, tickers: Sequence[str], on: date) -> list[str]:
    """Stop watching `tickers` from `on`: their earlier days and all their rows stay. Returns
    those that were active."""
    canonical = [normalize_ticker(ticker) for ticker in tickers]
    result = connection.execute(
        sa.update(watchlist)
        .where(watchlist.c.ticker.in_(canonical), watchlist.c.active)
        .values(active=False, removed_on=on)
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


def watch_frame(entries: Sequence[WatchedTicker]) -> pd.DataFrame:
    """The entries as a frame of `ticker_days.WATCH_COLUMNS`: who counts on which days."""
    return pd.DataFrame(
        {
            "ticker": [entry.ticker for entry in entries],
            "exchange": [entry.exchange for entry in entries],
            "history_start": [entry.history_start for entry in entries],
            "removed_on": [entry.removed_on for entry in entries],
        },
        columns=list(WATCH_COLUMNS),
    )


def listing(entries: Sequence[WatchedTicker]) -> pd.DataFrame:
    """The watch list as a table to print."""
    return pd.DataFrame(
        [
            {
                "ticker": entry.ticker,
                "exchange": entry.exchange,
                "active": entry.active,
                "history_start": entry.history_start or "",
                "removed_on": entry.removed_on or "",
                "provider": entry.provider or "",
                "intraday": entry.intraday,
                "added_at": entry.added_at.strftime("%Y-%m-%d %H:%M"),
            }
            for entry in entries
        ],
        columns=[
            "ticker",
            "exchange",
            "active",
            "history_start",
            "removed_on",
            "provider",
            "intraday",
            "added_at",
        ],
    )
