"""Managing the tickers we follow: the watch list (warehouse) and the ticker partitions (Dagster).

Adding a ticker only puts it on the watch list; `new_tickers_sensor` then registers its partition
and backfills its history. Commands that materialise right away register partitions themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from candle_pipeline.partitions import TICKERS_PARTITION_NAME
from candle_pipeline.warehouse import watchlist


class UnknownTickerError(LookupError):
    """A ticker that is neither on the watch list nor a registered partition."""


def registered(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(TICKERS_PARTITION_NAME))


def register(instance: dg.DagsterInstance, tickers: Sequence[str]) -> list[str]:
    """Add the partitions of `tickers` that do not exist yet; returns those added."""
    known = set(registered(instance))
    new = [ticker for ticker in dict.fromkeys(tickers) if ticker not in known]
    if new:
        instance.add_dynamic_partitions(TICKERS_PARTITION_NAME, new)
    return new


def register_for_run(
    engine: sa.Engine, instance: dg.DagsterInstance, tickers: Sequence[str]
) -> list[str]:
    """Make sure every ticker of a run is a partition: watched tickers are registered here."""
    with engine.connect() as connection:
        watched = {entry.ticker for entry in watchlist.entries(connection, active_only=True)}
    known = set(registered(instance))
    unknown = [t for t in tickers if t not in watched and t not in known]
    if unknown:
        raise UnknownTickerError(
            f"ticker(s) {', '.join(unknown)} are not on the watch list; add them with "
            "`candle-pipeline tickers add`"
        )
    return register(instance, tickers)


def remove(
    engine: sa.Engine,
    instance: dg.DagsterInstance,
    tickers: Sequence[str],
    delete_partitions: bool,
) -> tuple[list[str], list[str]]:
    """Deactivate `tickers` (their data stays); optionally delete their partitions too."""
    with engine.begin() as connection:
        deactivated = watchlist.deactivate(connection, tickers)
    deleted = []
    if delete_partitions:
        known = set(registered(instance))
        for ticker in tickers:
            if ticker in known:
                instance.delete_dynamic_partition(TICKERS_PARTITION_NAME, ticker)
                deleted.append(ticker)
    return deactivated, deleted


def listing(engine: sa.Engine, instance: dg.DagsterInstance) -> pd.DataFrame:
    """The watch list with whether each ticker is a registered partition."""
    with engine.connect() as connection:
        entries = watchlist.entries(connection)
    partitions = set(registered(instance))
    return pd.DataFrame(
        [
            {
                "ticker": entry.ticker,
                "exchange": entry.exchange,
                "active": entry.active,
                "partition": entry.ticker in partitions,
                "history_start": entry.history_start or "",
                "added_at": entry.added_at.strftime("%Y-%m-%d %H:%M"),
            }
            for entry in entries
        ],
        columns=["ticker", "exchange", "active", "partition", "history_start", "added_at"],
    )
