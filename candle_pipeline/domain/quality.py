"""Quote validation and the quality score of each ticker-day.

Validation never drops a row: every raw bar comes out with its session tag and one boolean flag
per rule (True marks a problem); `is_valid` is True only when no flag is raised, and only valid
regular-session bars reach the candles.

Row rules (integrity): a value is missing (NaN), OHLC is inconsistent (`low <= open, close <= high`
and `low <= high` broken), a price is not positive, the volume is negative, or the timestamp falls
outside the bar's trade date in the exchange's time zone. Sequence rules: a *spike* moves more than
`spike_threshold` from the previous valid close, both as traded and adjusted for a split or
dividend in between with the stored adjustment factors (the close times the ratio of the two
days' cumulative return factors), so a real split day is never a spike and an unexplained jump
still is (a known action explains the move only if the data was not adjusted already), and a
*stale run* repeats the same close with zero volume for `stale_run_bars` bars or more.

The score of a ticker-day is `completeness x validity x consistency`, each in [0, 1]:
- completeness: usable regular-session bars / bars expected from `market_timings` (390 on a normal
  US day, 210 on an early close; one bar for daily data);
- validity: rows with no flag / all rows the provider returned, every session included;
- consistency: `spike_penalty ** n`, n the unexplained spikes in the regular session.
A closed market day has no score.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from candle_pipeline.domain.adjustments import factors_for_bars
from candle_pipeline.domain.bars import INTERVAL_SECONDS, PRICE_COLUMNS, RAW_COLUMNS
from candle_pipeline.domain.sessions import (
    SESSION_OUTSIDE,
    SESSION_POST,
    SESSION_PRE,
    SESSION_REGULAR,
    ExchangeDirectory,
    attach_sessions,
    session_tags,
)

SESSIONS = (SESSION_REGULAR, SESSION_PRE, SESSION_POST, SESSION_OUTSIDE)
DAILY = "1d"
SECONDS_PER_MINUTE = 60
STATUS_SCORED = "scored"
STATUS_CLOSED = "market closed"
# Each unexplained spike in the regular session multiplies the consistency component by this.
SPIKE_PENALTY = 0.5
# A stale run: at least this many consecutive bars with the same close and zero volume.
STALE_RUN_MIN_BARS = 10
# A gap: at least this many consecutive expected regular-session bars without a usable bar
# (single quiet minutes without a trade are normal and only lower completeness).
GAP_MIN_BARS = 5
# A ticker's first bar is measured from its last valid close at most this many days earlier.
PREVIOUS_CLOSE_LOOKBACK_DAYS = 10

# The last valid close of each ticker before the days being validated.
PREVIOUS_CLOSE_COLUMNS = ("ticker", "trade_date", "close")


def _missing_values(bars: pd.DataFrame) -> pd.Series:
    return bars[[*PRICE_COLUMNS, "volume"]].isna().any(axis=1)


def _ohlc_inconsistent(bars: pd.DataFrame) -> pd.Series:
    body_low = bars[["open", "close"]].min(axis=1)
    body_high = bars[["open", "close"]].max(axis=1)
    return (bars["low"] > body_low) | (bars["high"] < body_high) | (bars["low"] > bars["high"])


def _non_positive_price(bars: pd.DataFrame) -> pd.Series:
    return (bars[list(PRICE_COLUMNS)] <= 0).any(axis=1)


def _negative_volume(bars: pd.DataFrame) -> pd.Series:
    return bars["volume"] < 0


# Rules that look at one row; their name becomes the column flag_<name>.
ROW_RULES: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = {
    "missing": _missing_values,
    "ohlc": _ohlc_inconsistent,
    "price": _non_positive_price,
    "volume": _negative_volume,
}
INTEGRITY_FLAGS = (*ROW_RULES, "outside_day")
SEQUENCE_FLAGS = ("spike", "stale")
FLAG_NAMES = (*INTEGRITY_FLAGS, *SEQUENCE_FLAGS)
FLAG_COLUMNS = tuple(f"flag_{name}" for name in FLAG_NAMES)
VALIDATED_COLUMNS = (*RAW_COLUMNS, "session", *FLAG_COLUMNS, "is_valid")


@dataclass(frozen=True)
class QualityRules:
    """The thresholds of validation and scoring: the gate and the spike move come from the
    quality resource (a user tunes them), the rest are the rules' own."""

    threshold: float
    spike_threshold: float
    spike_penalty: float = SPIKE_PENALTY
    stale_run_bars: int = STALE_RUN_MIN_BARS
    gap_min_bars: int = GAP_MIN_BARS


@dataclass(frozen=True)
class Validation:
    """Validated quotes and, for each of their rows, the close its spike move is measured from."""

    quotes: pd.DataFrame
    reference: pd.Series


# One row per assessed ticker-day: its status, score and components, and what the rules found.
REPORT_COLUMNS = (
    "ticker",
    "trade_date",
    "status",
    "score",
    "completeness",
    "validity",
    "consistency",
    "rows",
    "valid_rows",
    "regular_bars",
    "expected_bars",
    "usable_bars",
    "gaps",
    "gap_bars",
    "regular_spikes",
    *(f"{name}_rows" for name in FLAG_NAMES),
)
# One row per gap: consecutive expected regular-session bars without a usable bar.
GAP_COLUMNS = ("ticker", "trade_date", "start", "bars")


@dataclass(frozen=True)
class Assessment:
    """The quality of ticker-days: one row each in `reports` (REPORT_COLUMNS; the score and its
    components NaN on a closed market day) and one row per gap found in `gaps` (GAP_COLUMNS)."""

    reports: pd.DataFrame
    gaps: pd.DataFrame

    def passed(self, threshold: float) -> pd.Series:
        """The quality gate: a closed day passes (nothing is expected); an open day needs
        `score >= threshold`."""
        return (self.reports["status"] == STATUS_CLOSED) | (self.reports["score"] >= threshold)

    def verdicts(self, threshold: float) -> pd.Series:
        """The gate's decision in words, e.g. `quality score 0.4981 < threshold 0.8`."""
        relation = self.passed(threshold).map({True: ">=", False: "<"}).astype(str)
        scored = "quality score " + self.reports["score"].map("{:.4f}".format).astype(str)
        words = scored + " " + relation + f" threshold {threshold}"
        closed = self.reports["status"] + ": nothing is expected"
        return words.where(self.reports["score"].notna(), closed)


def validate_quotes(
    raw: pd.DataFrame,
    timings: pd.DataFrame,
    exchanges: ExchangeDirectory,
    rules: QualityRules,
    *,
    factors: pd.DataFrame | None = None,
    previous_closes: pd.DataFrame | None = None,
) -> Validation:
    """Every raw bar with its session tag, one flag per rule and `is_valid`.

    `factors` (the adjustment factor table, `adjustments.FACTOR_COLUMNS`) explain moves across
    ex-dates; `previous_closes`
    (PREVIOUS_CLOSE_COLUMNS) give the reference of each ticker's first bar. Without a reference a
    bar's prices are measured against its own close, which still catches a wild print inside it.
    """
    bars = raw.loc[:, list(RAW_COLUMNS)].reset_index(drop=True)
    with_sessions = attach_sessions(bars, timings, exchanges)
    flags = {name: rule(bars).to_numpy(dtype=bool) for name, rule in ROW_RULES.items()}
    flags["outside_day"] = _outside_day(bars, exchanges).to_numpy()
    sound = ~np.logical_or.reduce(list(flags.values()))
    as_traded, adjusted = _reference_closes(bars, sound, factors, previous_closes)
    # A known split or dividend may explain a move (unadjusted feeds) but is not required to
    # (feeds that already adjust history, like Yahoo's): the closer reference counts.
    closer = _largest_moves(bars, adjusted) < _largest_moves(bars, as_traded)
    reference = as_traded.mask(closer, adjusted)
    flags["spike"] = (_largest_moves(bars, reference) > rules.spike_threshold).to_numpy()
    flags["stale"] = _stale_runs(bars, rules.stale_run_bars).to_numpy()
    validated = bars.assign(
        session=session_tags(with_sessions).to_numpy(),
        **{f"flag_{name}": flags[name] for name in FLAG_NAMES},
    )
    validated["is_valid"] = ~validated[list(FLAG_COLUMNS)].any(axis=1)
    return Validation(quotes=validated, reference=reference)


def _outside_day(bars: pd.DataFrame, exchanges: ExchangeDirectory) -> pd.Series:
    """True where the timestamp's date in the exchange's time zone is not the trade date."""
    local_day = pd.Series(pd.NaT, index=bars.index, dtype="datetime64[ns]")
    mics = bars["ticker"].map(exchanges.mic_for)
    for mic in mics.unique():
        rows = mics == mic
        local = bars.loc[rows, "ts"].dt.tz_convert(xcals.get_calendar(mic).tz)
        local_day[rows] = local.dt.tz_localize(None).dt.normalize()
    return local_day != bars["trade_date"].dt.normalize()


def _reference_closes(
    bars: pd.DataFrame,
    sound: np.ndarray,
    factors: pd.DataFrame | None,
    previous_closes: pd.DataFrame | None,
) -> tuple[pd.Series, pd.Series]:
    """For each bar, the last sound close before it, as traded and adjusted by the factors of the
    actions in between (the bar's own close when there is none before it)."""
    ordered = bars.assign(sound=sound).sort_values(["ticker", "ts"], kind="stable")
    by_ticker = ordered["ticker"]
    last_close = (
        ordered["close"].where(ordered["sound"]).groupby(by_ticker).ffill().groupby(by_ticker)
    ).shift(1)
    last_day = (
        ordered["trade_date"].where(ordered["sound"]).groupby(by_ticker).ffill().groupby(by_ticker)
    ).shift(1)
    if previous_closes is not None and not previous_closes.empty:
        before = previous_closes.set_index("ticker")
        last_close = last_close.fillna(by_ticker.map(before["close"]))
        last_day = last_day.fillna(by_ticker.map(pd.to_datetime(before["trade_date"])))
    adjusted = last_close
    if factors is not None and not factors.empty:
        adjusted = _adjust_with_factors(ordered, last_close, last_day, factors)
    own_close = ordered["close"].where(ordered["close"] > 0)
    return (
        last_close.fillna(own_close).reindex(bars.index),
        adjusted.fillna(own_close).reindex(bars.index),
    )


def _adjust_with_factors(
    ordered: pd.DataFrame, last_close: pd.Series, last_day: pd.Series, factors: pd.DataFrame
) -> pd.Series:
    """Closes from an earlier day on the scale of the bar's day: times the ratio of the two days'
    cumulative return factors (`adjustments.factors_for_bars`), which is 1 unless a split or a
    dividend lies between them."""
    crossing = last_day.notna() & (last_day < ordered["trade_date"])
    if not crossing.any():
        return last_close
    bar_days = ordered.loc[crossing, ["ticker", "trade_date"]]
    earlier_days = bar_days.assign(trade_date=last_day[crossing])
    ratio = (
        factors_for_bars(bar_days, factors)["return_factor"]
        / factors_for_bars(earlier_days, factors)["return_factor"]
    )
    adjusted = last_close.copy()
    adjusted[ratio.index] = last_close[ratio.index] * ratio
    return adjusted


def _largest_moves(bars: pd.DataFrame, reference: pd.Series) -> pd.Series:
    prices = bars[list(PRICE_COLUMNS)].to_numpy(dtype="float64")
    relative = np.abs(prices / reference.to_numpy(dtype="float64")[:, None] - 1.0)
    return pd.Series(np.fmax.reduce(relative, axis=1), index=bars.index)


def _stale_runs(bars: pd.DataFrame, min_bars: int) -> pd.Series:
    """True on bars inside a run of at least `min_bars` equal closes with zero volume."""
    ordered = bars.sort_values(["ticker", "ts"], kind="stable")
    quiet = ordered["volume"].eq(0) & ordered["close"].notna()
    starts = (
        ordered["ticker"].ne(ordered["ticker"].shift())
        | ordered["trade_date"].ne(ordered["trade_date"].shift())
        | ordered["close"].ne(ordered["close"].shift())
        | ~quiet
        | ~quiet.shift(fill_value=False)
    )
    run = starts.cumsum()
    length = run.groupby(run).transform("size")
    return (quiet & (length >= min_bars)).reindex(bars.index)


def assess(
    validation: Validation,
    timings: pd.DataFrame,
    exchanges: ExchangeDirectory,
    ticker_days: pd.DataFrame,
    rules: QualityRules,
) -> Assessment:
    """The quality of each ticker-day of `ticker_days` (columns ticker, trade_date), whether it
    has rows or not: all at once, with no Python work per ticker-day."""
    quotes = validation.quotes
    wanted = (
        ticker_days.loc[:, ["ticker", "trade_date"]]
        .astype({"ticker": object, "trade_date": "datetime64[ns]"})
        .drop_duplicates()
        .sort_values(["trade_date", "ticker"])
    )
    partitions = attach_sessions(wanted, timings, exchanges)
    keys = ["ticker", "trade_date"]
    regular = quotes["session"] == SESSION_REGULAR
    counts = (
        quotes.assign(
            rows=1,
            regular_bars=regular,
            regular_spikes=regular & quotes["flag_spike"],
        )
        .groupby(keys)
        .agg(
            rows=("rows", "sum"),
            valid_rows=("is_valid", "sum"),
            regular_bars=("regular_bars", "sum"),
            regular_spikes=("regular_spikes", "sum"),
            **{f"{name}_rows": (f"flag_{name}", "sum") for name in FLAG_NAMES},
        )
    )
    widths = quotes.groupby(keys)["interval"].first().map(INTERVAL_SECONDS)
    usable = quotes[regular & quotes["is_valid"]]
    coverage, gaps = _coverage(usable, partitions.join(widths.rename("width"), on=keys), rules)
    table = partitions.join(counts, on=keys).join(coverage, on=keys)
    numbers = ["rows", "valid_rows", "regular_bars", "regular_spikes"]
    numbers += [f"{name}_rows" for name in FLAG_NAMES]
    table[numbers] = table[numbers].fillna(0).astype("int64")
    is_open = table["open_utc"].notna()
    expected = table["expected_bars"].where(is_open, 0)
    usable_bars = np.minimum(table["usable_bars"], expected)
    completeness = (usable_bars / expected.where(expected > 0)).fillna(1.0)
    validity = (table["valid_rows"] / table["rows"].where(table["rows"] > 0)).fillna(1.0)
    consistency = rules.spike_penalty ** table["regular_spikes"].astype("float64")
    table = table.assign(
        status=np.where(is_open, STATUS_SCORED, STATUS_CLOSED),
        expected_bars=expected,
        usable_bars=usable_bars,
        gaps=table["gaps"].where(is_open, 0),
        gap_bars=table["gap_bars"].where(is_open, 0),
        completeness=completeness.where(is_open),
        validity=validity.where(is_open),
        consistency=consistency.where(is_open),
        score=(completeness * validity * consistency).where(is_open),
    )
    reports = table.loc[:, list(REPORT_COLUMNS)].reset_index(drop=True)
    return Assessment(reports=reports, gaps=gaps)


def _coverage(
    usable: pd.DataFrame, partitions: pd.DataFrame, rules: QualityRules
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per ticker-day: expected regular bars, usable ones, and its gaps (runs of missing bars);
    and every gap with its start.

    Bars are placed on the session's grid (open + k x bar width, the lunch break removed), so a
    partition's missing bars are the grid slots no usable bar falls in. A partition without rows
    is measured in minute bars.
    """
    keys = ["ticker", "trade_date"]
    grid = partitions.reset_index(drop=True)
    grid["width"] = grid["width"].fillna(SECONDS_PER_MINUTE).astype("int64") // SECONDS_PER_MINUTE
    break_minutes = (
        (grid["break_end_utc"] - grid["break_start_utc"]).fillna(pd.Timedelta(0))
        // pd.Timedelta(minutes=1)
    ).astype("int64")
    daily = grid["width"] * SECONDS_PER_MINUTE == INTERVAL_SECONDS[DAILY]
    slots = -(-grid["expected_minute_bars"] // grid["width"])
    grid["expected"] = np.where(daily, grid["open_utc"].notna().astype("int64"), slots)
    grid["break_minutes"] = break_minutes
    grid["pid"] = np.arange(len(grid))

    placed = usable.loc[:, [*keys, "ts"]].merge(
        grid[[*keys, "pid", "open_utc", "break_start_utc", "break_end_utc", "width"]], on=keys
    )
    placed = placed.join(grid[["break_minutes", "expected"]], on="pid")
    minutes = (placed["ts"] - placed["open_utc"]) // pd.Timedelta(minutes=1)
    after_break = placed["break_end_utc"].notna() & (placed["ts"] >= placed["break_end_utc"])
    minutes = minutes - np.where(after_break, placed["break_minutes"], 0)
    is_daily = placed["width"] * SECONDS_PER_MINUTE == INTERVAL_SECONDS[DAILY]
    slot = np.where(is_daily, 0, minutes // placed["width"])
    inside = (slot >= 0) & (slot < placed["expected"])
    present = (
        pd.DataFrame({"pid": placed["pid"].to_numpy()[inside], "slot": slot[inside]})
        .drop_duplicates()
        .sort_values(["pid", "slot"])
    )
    usable_count = present.groupby("pid").size().reindex(grid["pid"], fill_value=0)
    gaps = _gaps(grid, *_gap_runs(present, grid["expected"].to_numpy(), rules.gap_min_bars))
    per_partition = gaps.groupby("pid")["bars"].agg(["size", "sum"]).reindex(grid["pid"])
    coverage = pd.DataFrame(
        {
            "expected_bars": grid["expected"].to_numpy(),
            "usable_bars": usable_count.to_numpy(),
            "gaps": per_partition["size"].fillna(0).astype("int64").to_numpy(),
            "gap_bars": per_partition["sum"].fillna(0).astype("int64").to_numpy(),
        },
        index=pd.MultiIndex.from_frame(grid[keys]),
    )
    return coverage, gaps.loc[:, list(GAP_COLUMNS)]


def _gap_runs(
    present: pd.DataFrame, expected: np.ndarray, min_bars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pid, first missing slot, length) of every run of at least `min_bars` missing slots."""
    pid = present["pid"].to_numpy()
    slot = present["slot"].to_numpy()
    # Sentinels: slot -1 before each partition's first slot and `expected` after its last.
    pids = np.arange(len(expected))
    all_pid = np.concatenate([pids, pid, pids])
    all_slot = np.concatenate([np.full(len(pids), -1), slot, expected])
    order = np.lexsort((all_slot, all_pid))
    all_pid, all_slot = all_pid[order], all_slot[order]
    same = all_pid[1:] == all_pid[:-1]
    length = all_slot[1:] - all_slot[:-1] - 1
    runs = same & (length >= min_bars)
    return all_pid[:-1][runs], all_slot[:-1][runs] + 1, length[runs]


def _gaps(
    grid: pd.DataFrame, pid: np.ndarray, first_slot: np.ndarray, length: np.ndarray
) -> pd.DataFrame:
    """Each gap's ticker-day and start: the session open plus its slots, the break skipped."""
    at = grid.iloc[pid].reset_index(drop=True)
    start = at["open_utc"] + pd.to_timedelta(first_slot * at["width"].to_numpy(), unit="min")
    after_break = at["break_start_utc"].notna() & (start >= at["break_start_utc"])
    start = start + pd.to_timedelta(np.where(after_break, at["break_minutes"], 0), unit="min")
    return pd.DataFrame(
        {
            "pid": pid,
            "ticker": at["ticker"],
            "trade_date": at["trade_date"],
            "start": start,
            "bars": length.astype("int64"),
        }
    )


def flagged_rows(
    validation: Validation, flag: str, limit: int, day: date | None = None
) -> pd.DataFrame:
    """The first `limit` rows raising `flag` (of `day` only, if given), with the close each was
    measured from (`reference`) and its largest move from it."""
    quotes = validation.quotes
    flagged = quotes[quotes[f"flag_{flag}"]]
    if day is not None:
        flagged = flagged[flagged["trade_date"] == pd.Timestamp(day)]
    chosen = flagged.head(limit)
    reference = validation.reference[chosen.index]
    return chosen.loc[
        :, ["ticker", "trade_date", "ts", "session", *PRICE_COLUMNS, "volume"]
    ].assign(
        trade_date=chosen["trade_date"].dt.date,
        reference=reference,
        move=_largest_moves(chosen, reference),
    )
