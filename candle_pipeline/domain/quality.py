"""Quote validation and the quality score of each ticker-day.

Validation never drops a row: every raw bar comes out with its session tag and one boolean flag
per rule (True marks a problem); `is_valid` is True only when no flag is raised, and only valid
regular-session bars reach the candles.

Row rules (integrity): a value is missing (NaN), OHLC is inconsistent (`low <= open, close <= high`
and `low <= high` broken), a price is not positive, the volume is negative, or the timestamp falls
outside the bar's trade date in the exchange's time zone. Sequence rules: a *spike* moves more than
`spike_threshold` from the previous valid close, both as traded and adjusted for a split or
dividend in between (a known action explains the move only if the data was not adjusted already),
and a *stale run* repeats the same close with zero volume for `stale_run_bars` bars or more.

The score of a ticker-day is `completeness x validity x consistency`, each in [0, 1]:
- completeness: usable regular-session bars / bars expected from `market_timings` (390 on a normal
  US day, 210 on an early close; one bar for daily data);
- validity: rows with no flag / all rows the provider returned, every session included;
- consistency: `spike_penalty ** n`, n the unexplained spikes in the regular session.
A closed market day has no score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import exchange_calendars as xcals
import numpy as np
import pandas as pd

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
from candle_pipeline.settings import (
    DEFAULT_QUALITY_THRESHOLD,
    DEFAULT_SPIKE_THRESHOLD,
    GAP_MIN_BARS,
    SPIKE_PENALTY,
    STALE_RUN_MIN_BARS,
)

SESSIONS = (SESSION_REGULAR, SESSION_PRE, SESSION_POST, SESSION_OUTSIDE)
DAILY = "1d"
SECONDS_PER_MINUTE = 60
STATUS_SCORED = "scored"
STATUS_CLOSED = "market closed"

# Known dividends and splits: `split_ratio` new shares per old share (7.0 for 7:1), `dividend` the
# cash per share, both on the ex-date (the first day the price reflects them); NULL when absent.
ACTION_COLUMNS = ("ticker", "ex_date", "dividend", "split_ratio")
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
    """The tunable thresholds of validation and scoring."""

    threshold: float = DEFAULT_QUALITY_THRESHOLD
    spike_threshold: float = DEFAULT_SPIKE_THRESHOLD
    spike_penalty: float = SPIKE_PENALTY
    stale_run_bars: int = STALE_RUN_MIN_BARS
    gap_min_bars: int = GAP_MIN_BARS


@dataclass(frozen=True)
class Validation:
    """Validated quotes and, for each of their rows, the close its spike move is measured from."""

    quotes: pd.DataFrame
    reference: pd.Series


@dataclass(frozen=True)
class Gap:
    """Consecutive expected regular-session bars without a usable bar."""

    start: pd.Timestamp
    bars: int


@dataclass(frozen=True)
class PartitionQuality:
    """What validation found in one ticker-day, and its score (None on a closed market day)."""

    ticker: str
    trade_date: date
    status: str
    rows: int
    valid_rows: int
    flag_counts: Mapping[str, int]
    regular_bars: int
    regular_spikes: int
    expected_bars: int
    usable_bars: int
    gaps: tuple[Gap, ...]
    completeness: float | None
    validity: float | None
    consistency: float | None
    score: float | None

    @property
    def missing_bars(self) -> int:
        return self.expected_bars - self.usable_bars

    def passed(self, threshold: float) -> bool:
        return passes(self.status, self.score, threshold)

    def verdict(self, threshold: float) -> str:
        return verdict(self.status, self.score, threshold)


def passes(status: str, score: float | None, threshold: float) -> bool:
    """The quality gate: a closed day passes (nothing is expected); an open day needs
    `score >= threshold`."""
    return status == STATUS_CLOSED or (score is not None and score >= threshold)


def verdict(status: str, score: float | None, threshold: float) -> str:
    """The gate's decision in words, e.g. `quality score 0.4981 < threshold 0.8`."""
    if status == STATUS_CLOSED or score is None:
        return f"{status}: nothing is expected"
    relation = ">=" if passes(status, score, threshold) else "<"
    return f"quality score {score:.4f} {relation} threshold {threshold}"


def validate_quotes(
    raw: pd.DataFrame,
    timings: pd.DataFrame,
    exchanges: ExchangeDirectory,
    rules: QualityRules | None = None,
    *,
    actions: pd.DataFrame | None = None,
    previous_closes: pd.DataFrame | None = None,
) -> Validation:
    """Every raw bar with its session tag, one flag per rule and `is_valid`.

    `actions` (ACTION_COLUMNS) explain moves across ex-dates; `previous_closes`
    (PREVIOUS_CLOSE_COLUMNS) give the reference of each ticker's first bar. Without a reference a
    bar's prices are measured against its own close, which still catches a wild print inside it.
    """
    rules = rules or QualityRules()
    bars = raw.loc[:, list(RAW_COLUMNS)].reset_index(drop=True)
    with_sessions = attach_sessions(bars, timings, exchanges)
    flags = {name: rule(bars).to_numpy(dtype=bool) for name, rule in ROW_RULES.items()}
    flags["outside_day"] = _outside_day(bars, exchanges).to_numpy()
    sound = ~np.logical_or.reduce(list(flags.values()))
    as_traded, adjusted = _reference_closes(bars, sound, actions, previous_closes)
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
    actions: pd.DataFrame | None,
    previous_closes: pd.DataFrame | None,
) -> tuple[pd.Series, pd.Series]:
    """For each bar, the last sound close before it, as traded and adjusted for the actions in
    between (the bar's own close when there is none before it)."""
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
    if actions is not None and not actions.empty:
        adjusted = _adjust_for_actions(ordered, last_close, last_day, actions)
    own_close = ordered["close"].where(ordered["close"] > 0)
    return (
        last_close.fillna(own_close).reindex(bars.index),
        adjusted.fillna(own_close).reindex(bars.index),
    )


def _adjust_for_actions(
    ordered: pd.DataFrame, last_close: pd.Series, last_day: pd.Series, actions: pd.DataFrame
) -> pd.Series:
    """Closes from an earlier day, as they would trade after the actions since that day."""
    crossing = last_day.notna() & (last_day < ordered["trade_date"])
    spans = pd.DataFrame(
        {
            "row": ordered.index[crossing],
            "ticker": ordered.loc[crossing, "ticker"].to_numpy(),
            "after": last_day[crossing].to_numpy(),
            "until": ordered.loc[crossing, "trade_date"].to_numpy(),
        }
    )
    known = actions.loc[:, list(ACTION_COLUMNS)].assign(
        ex_date=lambda frame: pd.to_datetime(frame["ex_date"]),
        dividend=lambda frame: frame["dividend"].astype("float64").fillna(0.0),
        split_ratio=lambda frame: frame["split_ratio"].astype("float64").fillna(1.0),
    )
    joined = spans.merge(known, on="ticker")
    inside = joined[(joined["ex_date"] > joined["after"]) & (joined["ex_date"] <= joined["until"])]
    if inside.empty:
        return last_close
    effect = inside.groupby("row").agg(split=("split_ratio", "prod"), dividend=("dividend", "sum"))
    adjusted = last_close.copy()
    adjusted[effect.index] = (last_close[effect.index] - effect["dividend"]) / effect["split"]
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
    ticker_days: Iterable[tuple[date, str]],
    rules: QualityRules | None = None,
) -> list[PartitionQuality]:
    """The quality of each ticker-day in `ticker_days`, whether it has rows or not."""
    rules = rules or QualityRules()
    quotes = validation.quotes
    wanted = sorted(set(ticker_days))
    partitions = attach_sessions(
        pd.DataFrame(
            {
                "ticker": [ticker for _, ticker in wanted],
                "trade_date": pd.to_datetime([day for day, _ in wanted]),
            }
        ).astype({"ticker": object, "trade_date": "datetime64[ns]"}),
        timings,
        exchanges,
    )
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
            **{name: (f"flag_{name}", "sum") for name in FLAG_NAMES},
        )
    )
    widths = quotes.groupby(keys)["interval"].first().map(INTERVAL_SECONDS)
    usable = quotes[regular & quotes["is_valid"]]
    coverage = _coverage(usable, partitions.join(widths.rename("width"), on=keys), rules)
    table = partitions.join(counts, on=keys).join(coverage, on=keys)
    return [_partition_quality(row, rules) for row in table.itertuples(index=False)]


def _coverage(usable: pd.DataFrame, partitions: pd.DataFrame, rules: QualityRules) -> pd.DataFrame:
    """Per ticker-day: expected regular bars, usable ones, and gaps (runs of missing bars).

    Bars are placed on the session's grid (open + k x bar width, the lunch break removed), so a
    partition's missing bars are the grid slots no usable bar falls in. A partition without rows
    is measured in minute bars.
    """
    keys = ["ticker", "trade_date"]
    grid = partitions.copy()
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
    gaps = _gap_runs(present, grid["expected"].to_numpy(), rules.gap_min_bars)
    gap_lists = {pid: [] for pid in grid["pid"]}
    for pid, first_slot, length in gaps:
        row = grid.iloc[pid]
        gap_lists[pid].append(Gap(start=_slot_start(row, first_slot), bars=int(length)))
    return pd.DataFrame(
        {
            "expected_bars": grid["expected"].to_numpy(),
            "usable_bars": usable_count.to_numpy(),
            "gaps": [tuple(gap_lists[pid]) for pid in grid["pid"]],
        },
        index=pd.MultiIndex.from_frame(grid[keys]),
    )


def _gap_runs(present: pd.DataFrame, expected: np.ndarray, min_bars: int) -> list[tuple]:
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
    return list(zip(all_pid[:-1][runs], all_slot[:-1][runs] + 1, length[runs], strict=True))


def _slot_start(partition: pd.Series, slot: int) -> pd.Timestamp:
    offset = pd.Timedelta(minutes=int(slot) * int(partition["width"]))
    start = partition["open_utc"] + offset
    if pd.notna(partition["break_start_utc"]) and start >= partition["break_start_utc"]:
        start += pd.Timedelta(minutes=int(partition["break_minutes"]))
    return start


def _partition_quality(row: tuple, rules: QualityRules) -> PartitionQuality:
    fields = row._asdict()
    rows = int(np.nan_to_num(fields["rows"]))
    valid_rows = int(np.nan_to_num(fields["valid_rows"]))
    regular_spikes = int(np.nan_to_num(fields["regular_spikes"]))
    flag_counts = {name: int(np.nan_to_num(fields[name])) for name in FLAG_NAMES}
    is_open = pd.notna(fields["open_utc"])
    expected = int(fields["expected_bars"]) if is_open else 0
    usable = min(int(fields["usable_bars"]), expected)
    completeness = validity = consistency = score = None
    if is_open:
        completeness = usable / expected if expected else 1.0
        validity = valid_rows / rows if rows else 1.0
        consistency = rules.spike_penalty**regular_spikes
        score = completeness * validity * consistency
    return PartitionQuality(
        ticker=fields["ticker"],
        trade_date=pd.Timestamp(fields["trade_date"]).date(),
        status=STATUS_SCORED if is_open else STATUS_CLOSED,
        rows=rows,
        valid_rows=valid_rows,
        flag_counts=flag_counts,
        regular_bars=int(np.nan_to_num(fields["regular_bars"])),
        regular_spikes=regular_spikes,
        expected_bars=expected,
        usable_bars=usable,
        gaps=fields["gaps"] if is_open else (),
        completeness=completeness,
        validity=validity,
        consistency=consistency,
        score=score,
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
