"""Point-in-time prices: raw bars from split-adjusted ones, corporate actions from Lean factor
files, and the CRSP-style cumulative adjustment factors that derive adjusted series from raw ones.

Conventions (CRSP's): a split's `split_ratio` is new shares per old share (7.0 for AAPL's 7:1);
a bar dated before an action's ex-date is adjusted by it. The cumulative `price_factor` of a bar
is the product of the split ratios of every later ex-date: split-adjusted price = raw price /
`price_factor`, split-adjusted volume = raw volume x `volume_factor`. `return_factor` also holds
each later cash dividend as `reference_close / (reference_close - dividend)`: total-return price
= raw price / `return_factor`. An action counts as of a day once it has happened and the
warehouse has seen it (`known_on` = the later of ex-date and first-seen day), so a series read
as of a past day is the one a reader saw then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from candle_pipeline.domain.bars import PRICE_COLUMNS

# A provider's split-adjusted prices come as 32-bit floats (about 7 significant digits): raw
# prices are rounded to this many significant digits, so the same traded price un-adjusted by
# different ratios (a fetch before and after a later split) is stored as the same number.
RAW_SIGNIFICANT_DIGITS = 6

FACTOR_COLUMNS = (
    "ticker",
    "ex_date",
    "known_on",
    "split_ratio",
    "dividend_factor",
    "price_factor",
    "volume_factor",
    "return_factor",
)
BAR_FACTOR_COLUMNS = ("price_factor", "volume_factor", "return_factor")
ADJUST_SPLITS = "splits"
ADJUST_ALL = "all"
ADJUSTMENTS = (ADJUST_SPLITS, ADJUST_ALL)

# A dividend's reference close is the last close at most this many calendar days before its
# ex-date (a weekend and a holiday); an older close belongs to another session.
REFERENCE_CLOSE_MAX_DAYS = 5

# Lean factor files: one row per date up to which its factors hold (until the previous row's).
FACTOR_FILE_COLUMNS = ("date", "price_factor", "split_factor", "reference_price")
# Lean writes factors to 7 digits (0.25 / 0.0357143 = 6.999997 is a 7:1 split): ratios and
# dividends derived from them are rounded to this many decimals.
FACTOR_FILE_DECIMALS = 4


def round_significant(values: pd.Series | np.ndarray, digits: int) -> np.ndarray:
    """`values` rounded to `digits` significant digits (NaN and zero stay as they are)."""
    array = np.asarray(values, dtype="float64")
    magnitude = np.floor(np.log10(np.abs(np.where(array == 0, 1.0, array))))
    scale = 10.0 ** (digits - 1 - np.nan_to_num(magnitude))
    return np.round(array * scale) / scale


def later_splits(bars: pd.DataFrame, splits: pd.DataFrame, as_of: Mapping[str, date]) -> np.ndarray:
    """Per bar, the product of its ticker's split ratios with an ex-date after the bar's trade
    date and on or before the ticker's `as_of` day: the ratio a provider divided the bar by on
    that day (1.0 for a ticker not in `as_of`: its bars are raw)."""
    ex_date = pd.to_datetime(splits["ex_date"])
    until = pd.to_datetime(splits["ticker"].map(as_of))
    known = splits[splits["split_ratio"].notna() & (splits["split_ratio"] > 0) & (ex_date <= until)]
    steps = pd.DataFrame(
        {
            "ticker": known["ticker"],
            "ex_date": ex_date[known.index],
            "split_ratio": known["split_ratio"].astype("float64"),
            "dividend_factor": 1.0,
        }
    )
    return factors_for_bars(bars, _cumulate(steps))["price_factor"].to_numpy()


def unadjust_splits(
    bars: pd.DataFrame, splits: pd.DataFrame, as_of: Mapping[str, date]
) -> pd.DataFrame:
    """Raw (as traded) bars from bars divided by every split between each bar and its ticker's
    `as_of` day (Yahoo's chart prices as of the day of the request): prices times, volumes
    divided by, the ratio, rounded (`RAW_SIGNIFICANT_DIGITS`) so a re-fetch after a later split
    stores the same numbers. Tickers not in `as_of` are raw already and stay as they are."""
    adjusted = bars["ticker"].isin(list(as_of)).to_numpy()
    if not adjusted.any():
        return bars
    ratio = later_splits(bars, splits, as_of)
    raw = bars.copy()
    for column in PRICE_COLUMNS:
        values = bars[column].to_numpy(dtype="float64")
        unadjusted = round_significant(values * ratio, RAW_SIGNIFICANT_DIGITS)
        raw[column] = np.where(adjusted, unadjusted, values)
    volume = bars["volume"].to_numpy(dtype="float64")
    raw["volume"] = np.where(adjusted, np.round(volume / ratio), volume)
    return raw


def actions_from_factor_file(
    factors: pd.DataFrame, ticker: str, sessions: pd.DatetimeIndex
) -> pd.DataFrame:
    """A Lean factor file (`FACTOR_FILE_COLUMNS`, dates as `YYYYMMDD`) as the ticker's splits
    and dividends.

    A row's factors hold up to and including its date; where the next row's differ, an action
    took effect on the first session after the row's date (from `sessions`, else the next
    weekday): its split ratio is the split factors' ratio, its dividend `reference_price x (1 -
    price factor / next price factor)`, the reference price being the raw close of the row's
    date.
    """
    rows = factors.assign(date=pd.to_datetime(factors["date"].astype(str), format="%Y%m%d"))
    rows = rows.sort_values("date", kind="stable").reset_index(drop=True)
    following = rows.shift(-1)
    split = following["split_factor"] / rows["split_factor"]
    price_ratio = rows["price_factor"] / following["price_factor"]
    changed = following["date"].notna() & (~np.isclose(split, 1.0) | ~np.isclose(price_ratio, 1.0))
    events = rows[changed]
    position = sessions.searchsorted(events["date"], side="right")
    inside = position < len(sessions)
    next_session = np.where(
        inside,
        sessions[np.minimum(position, len(sessions) - 1)],
        events["date"] + pd.offsets.BDay(1),
    )
    dividend = events["reference_price"] * (1.0 - price_ratio[changed])
    has_dividend = ~np.isclose(price_ratio[changed], 1.0)
    has_split = ~np.isclose(split[changed], 1.0)
    return pd.DataFrame(
        {
            "ticker": ticker,
            "ex_date": pd.to_datetime(next_session).astype("datetime64[ns]"),
            "dividend": dividend.where(has_dividend).round(FACTOR_FILE_DECIMALS),
            "split_ratio": split[changed].where(has_split).round(FACTOR_FILE_DECIMALS),
            "reference_close": events["reference_price"].astype("float64"),
        }
    ).reset_index(drop=True)


def last_closes(bars: pd.DataFrame) -> pd.DataFrame:
    """The last valid raw close of each ticker-day of validated bars (`ticker`, `trade_date`,
    `close`)."""
    valid = bars[bars["is_valid"]].sort_values("ts", kind="stable")
    return valid.groupby(["ticker", "trade_date"], as_index=False)["close"].last()


def fill_reference_closes(actions: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """`actions` whose dividends lack a reference close get the last of `closes` (`ticker`,
    `trade_date`, `close`: raw daily closes) before their ex-date, if it is recent enough
    (`REFERENCE_CLOSE_MAX_DAYS`)."""
    missing = actions["dividend"].notna() & actions["reference_close"].isna()
    if not missing.any() or closes.empty:
        return actions
    wanted = pd.DataFrame(
        {
            "row": actions.index[missing],
            "ticker": actions.loc[missing, "ticker"].to_numpy(),
            "ex_date": pd.to_datetime(actions.loc[missing, "ex_date"]).astype("datetime64[ns]"),
        }
    ).sort_values("ex_date", kind="stable")
    known = (
        closes.loc[closes["close"].notna(), ["ticker", "trade_date", "close"]]
        .assign(trade_date=lambda f: pd.to_datetime(f["trade_date"]).astype("datetime64[ns]"))
        .sort_values("trade_date", kind="stable")
    )
    found = (
        pd.merge_asof(
            wanted,
            known,
            left_on="ex_date",
            right_on="trade_date",
            by="ticker",
            direction="backward",
            allow_exact_matches=False,
            tolerance=pd.Timedelta(days=REFERENCE_CLOSE_MAX_DAYS),
        )
        .set_index("row")["close"]
        .dropna()
    )
    filled = actions.copy()
    filled.loc[found.index, "reference_close"] = found
    return filled


def adjustment_factors(actions: pd.DataFrame) -> pd.DataFrame:
    """The CRSP-style factor table (`FACTOR_COLUMNS`) of stored actions (`ticker`, `ex_date`,
    `dividend`, `split_ratio`, `reference_close`, `first_seen`): one row per ticker and ex-date
    with the step of that action and the cumulative factors of the bars before it.

    A dividend without a reference close has no return step (its factor is 1).
    """
    ex_date = pd.to_datetime(actions["ex_date"])
    first_seen = pd.to_datetime(actions["first_seen"], utc=True).dt.tz_localize(None).dt.normalize()
    dividend = actions["dividend"].astype("float64").fillna(0.0)
    reference = actions["reference_close"].astype("float64")
    dividend_factor = ((reference - dividend) / reference).where(
        (dividend > 0) & (reference > dividend), 1.0
    )
    steps = pd.DataFrame(
        {
            "ticker": actions["ticker"],
            "ex_date": ex_date,
            "known_on": np.maximum(ex_date, first_seen),
            "split_ratio": actions["split_ratio"].astype("float64").fillna(1.0),
            "dividend_factor": dividend_factor.astype("float64"),
        }
    )
    return _cumulate(steps)[list(FACTOR_COLUMNS)]


def known_factors(
    stored_factors: pd.DataFrame, stored_actions: pd.DataFrame, fresh_actions: pd.DataFrame
) -> pd.DataFrame:
    """The factor table a run measures moves with: the stored one (`FACTOR_COLUMNS`), and for
    each ticker with freshly fetched actions the factors of its stored actions with the fresh
    ones laid over them (what the run is about to store; the first sighting does not matter to a
    rule that uses every known action, so a new action counts from its ex-date)."""
    if fresh_actions.empty:
        return stored_factors
    key = ["ticker", "ex_date"]
    fresh = fresh_actions.assign(ex_date=pd.to_datetime(fresh_actions["ex_date"]))
    stored = stored_actions.assign(ex_date=pd.to_datetime(stored_actions["ex_date"]))
    renewed = set(fresh["ticker"])
    earlier = stored[stored["ticker"].isin(renewed)].set_index(key)
    fresh = fresh.join(earlier[["first_seen", "reference_close"]], on=key, rsuffix="_stored")
    fresh = fresh.assign(
        first_seen=fresh["first_seen"].fillna(
            pd.to_datetime(fresh["ex_date"]).dt.tz_localize("UTC")
        ),
        reference_close=fresh["reference_close"].fillna(fresh["reference_close_stored"]),
    )
    replaced = pd.MultiIndex.from_frame(earlier.reset_index()[key]).isin(
        pd.MultiIndex.from_frame(fresh[key])
    )
    columns = ["ticker", "ex_date", "dividend", "split_ratio", "reference_close", "first_seen"]
    history = pd.concat(
        [earlier.reset_index().loc[~replaced, columns], fresh.loc[:, columns]], ignore_index=True
    )
    kept = stored_factors[~stored_factors["ticker"].isin(renewed)]
    return pd.concat([kept, adjustment_factors(history)], ignore_index=True)


def as_of(factors: pd.DataFrame, day: date | None) -> pd.DataFrame:
    """The factor table as a reader saw it on `day`: the actions known by then, cumulated again
    (None: every known action)."""
    if day is None:
        return factors
    return _cumulate(factors[pd.to_datetime(factors["known_on"]) <= pd.Timestamp(day)])


def _cumulate(steps: pd.DataFrame) -> pd.DataFrame:
    """Cumulative factors: for each ex-date, the product of the steps of it and every later one."""
    ordered = steps.sort_values(["ticker", "ex_date"], ascending=[True, False], kind="stable")
    by_ticker = ordered.groupby("ticker", sort=False)
    price = by_ticker["split_ratio"].cumprod()
    dividends = (1.0 / ordered["dividend_factor"]).groupby(ordered["ticker"], sort=False).cumprod()
    return (
        ordered.assign(price_factor=price, volume_factor=price, return_factor=price * dividends)
        .sort_values(["ticker", "ex_date"], kind="stable")
        .reset_index(drop=True)
    )


def factors_for_bars(bars: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """Per bar (same index), the cumulative factors of the first ex-date after its trade date
    (1.0 when none)."""
    keyed = pd.DataFrame(
        {
            "row": np.arange(len(bars)),
            "ticker": bars["ticker"].to_numpy(),
            "trade_date": pd.to_datetime(bars["trade_date"]).to_numpy(),
        }
    ).sort_values("trade_date", kind="stable")
    table = factors.loc[:, ["ticker", "ex_date", *BAR_FACTOR_COLUMNS]].assign(
        ex_date=lambda frame: pd.to_datetime(frame["ex_date"]).astype("datetime64[ns]")
    )
    matched = pd.merge_asof(
        keyed,
        table.sort_values("ex_date", kind="stable"),
        left_on="trade_date",
        right_on="ex_date",
        by="ticker",
        direction="forward",
        allow_exact_matches=False,
    ).sort_values("row")
    result = matched[list(BAR_FACTOR_COLUMNS)].fillna(1.0)
    result.index = bars.index
    return result


def adjust(bars: pd.DataFrame, factors: pd.DataFrame, how: str) -> pd.DataFrame:
    """Bars with prices and volumes adjusted by `factors` (`factors_for_bars` of the table as of
    the reader's day): `splits` for split-adjusted, `all` for total-return (split + dividend)."""
    if how not in ADJUSTMENTS:
        raise ValueError(f"adjust must be one of {', '.join(ADJUSTMENTS)} or None, not {how!r}")
    per_bar = factors_for_bars(bars, factors)
    price = per_bar["price_factor" if how == ADJUST_SPLITS else "return_factor"]
    adjusted = bars.copy()
    for column in PRICE_COLUMNS:
        adjusted[column] = bars[column] / price
    adjusted["volume"] = bars["volume"] * per_bar["volume_factor"]
    return adjusted
