"""Corporate actions: dividends and splits per ticker and ex-date, as a provider reports them."""

from __future__ import annotations

import pandas as pd

ACTION_COLUMNS = ("ticker", "ex_date", "dividend", "split_ratio")
# What a provider may add: the dividend's currency, the raw close before the ex-date.
ACTION_DETAIL_COLUMNS = ("currency", "reference_close")
# As a run fetched them, then as stored (with the moment each was first seen).
FETCHED_ACTION_COLUMNS = (*ACTION_COLUMNS, "source", "fetched_at", *ACTION_DETAIL_COLUMNS)
STORED_ACTION_COLUMNS = (*FETCHED_ACTION_COLUMNS, "first_seen")

ACTION_DTYPES = {
    "ticker": object,
    "ex_date": "datetime64[ns]",
    "dividend": "float64",
    "split_ratio": "float64",
    "source": object,
    "fetched_at": "datetime64[ns, UTC]",
    "currency": object,
    "reference_close": "float64",
    "first_seen": "datetime64[ns, UTC]",
}


def empty_actions(columns: tuple[str, ...] = ACTION_COLUMNS) -> pd.DataFrame:
    """No actions, in the canonical columns and types.

    `dividend` is the cash amount per share in the quote currency; `split_ratio` the number of new
    shares per old share (4.0 for a 4:1 split, 0.1 for a 1:10 reverse split). A day with only one
    of them holds NULL in the other.
    """
    return pd.DataFrame({column: pd.Series(dtype=ACTION_DTYPES[column]) for column in columns})


def with_details(actions: pd.DataFrame) -> pd.DataFrame:
    """`actions` with the detail columns a provider did not fill, empty."""
    missing = {
        column: pd.Series(dtype=ACTION_DTYPES[column], index=actions.index)
        for column in ACTION_DETAIL_COLUMNS
        if column not in actions.columns
    }
    return actions.assign(**missing)
