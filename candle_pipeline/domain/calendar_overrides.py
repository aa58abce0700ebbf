"""Calendar corrections: a closure, a late open or an early close of one exchange on one day,
recorded by a user (or shipped as a default) and laid over exchange_calendars' sessions.

The library learns of an unscheduled closure (a typhoon, a day of national mourning, an outage)
only when a release ships it; an override fixes the day locally the same hour. Overrides only
take from a session: a day the library has closed cannot be opened, and a late open or early
close lies strictly inside the library's regular session. Times are the exchange's local time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

CLOSED = "closed"
LATE_OPEN = "late_open"
EARLY_CLOSE = "early_close"
KINDS = (CLOSED, LATE_OPEN, EARLY_CLOSE)
KIND_WORDS = {CLOSED: "a closure", LATE_OPEN: "a late open", EARLY_CLOSE: "an early close"}
# The columns `apply_overrides` reads: one row per override in force.
OVERRIDE_COLUMNS = ("mic", "session_date", "kind", "at")
# How far ahead a correction may be recorded: exchanges announce closures for the year ahead.
DAYS_AHEAD = 366
CLOCK = re.compile(r"(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)")
MINUTE = pd.Timedelta(minutes=1)


class OverrideError(ValueError):
    """An override that cannot be recorded; the message says why in one line."""


@dataclass(frozen=True)
class CalendarOverride:
    """One correction of one exchange's day; `at` is the local time of a late open or an early
    close (None for a closure)."""

    mic: str
    session_date: date
    kind: str
    at: time | None = None
    reason: str | None = None
    source: str | None = None

    def describe(self) -> str:
        when = f" at {self.at:%H:%M}" if self.at is not None else ""
        return f"{KIND_WORDS[self.kind]}{when} of {self.mic} on {self.session_date.isoformat()}"


@dataclass(frozen=True)
class RegularSession:
    """The library's session of a day, in the exchange's local time."""

    open: pd.Timestamp
    close: pd.Timestamp


def parse_clock(text: str) -> time:
    """`HH:MM` on a 24-hour clock, or a one-line error."""
    match = CLOCK.fullmatch(text.strip())
    if match is None:
        raise OverrideError(f"--at {text!r} is not a time of day HH:MM between 00:00 and 23:59")
    return time(int(match["hour"]), int(match["minute"]))


def check_day(day: date, first: date, today: date) -> None:
    """Refuse a day before the first day partition or more than DAYS_AHEAD after today."""
    last = today + timedelta(days=DAYS_AHEAD)
    if not first <= day <= last:
        raise OverrideError(
            f"{day.isoformat()} is outside the days a correction can be recorded for "
            f"({first.isoformat()} .. {last.isoformat()}: the first day partition to a year ahead)"
        )


def check_override(
    override: CalendarOverride,
    regular: RegularSession | None,
    existing: Iterable[CalendarOverride],
) -> None:
    """Refuse an override that contradicts the library's session of the day (`regular`, None
    when the library has no session) or an override already in force for the same day."""
    day = f"{override.mic} on {override.session_date.isoformat()}"
    if override.kind not in KINDS:
        raise OverrideError(f"unknown override kind {override.kind!r}; one of {', '.join(KINDS)}")
    if override.kind == CLOSED and not (override.reason or "").strip():
        raise OverrideError(f"closing {day} needs a --reason")
    if regular is None:
        raise OverrideError(f"exchange_calendars has no session of {day}: nothing to correct")
    key = (override.mic, override.session_date)
    same_day = [other for other in existing if (other.mic, other.session_date) == key]
    for other in same_day:
        if other.kind == override.kind or CLOSED in (other.kind, override.kind):
            raise OverrideError(
                f"{day} already has {KIND_WORDS[other.kind]}: "
                f"`calendar remove {override.mic} {override.session_date.isoformat()}` first"
            )
    if override.kind == CLOSED:
        return
    if override.at is None:
        raise OverrideError(f"{KIND_WORDS[override.kind]} of {day} needs --at HH:MM")
    at = local_moment(override.session_date, override.at, regular.open.tz)
    if not regular.open < at < regular.close:
        raise OverrideError(
            f"{override.at:%H:%M} is outside {day}'s regular session "
            f"({regular.open:%H:%M}-{regular.close:%H:%M} local time)"
        )
    for other in same_day:
        other_at = local_moment(other.session_date, other.at or time(), regular.open.tz)
        opens, closes = (at, other_at) if override.kind == LATE_OPEN else (other_at, at)
        if opens >= closes:
            raise OverrideError(
                f"{day} would open at {opens:%H:%M} and close at {closes:%H:%M}: "
                "a late open must come before an early close"
            )


def local_moment(day: date, at: time, tz: object) -> pd.Timestamp:
    """`at` on `day` in the exchange's time zone."""
    return pd.Timestamp(datetime.combine(day, at)).tz_localize(tz)


def overrides_frame(overrides: Iterable[CalendarOverride]) -> pd.DataFrame:
    """The overrides as the frame `apply_overrides` reads."""
    rows = [(o.mic, pd.Timestamp(o.session_date), o.kind, o.at) for o in overrides]
    return pd.DataFrame(rows, columns=list(OVERRIDE_COLUMNS)).astype(
        {"mic": object, "session_date": "datetime64[ns]", "kind": object, "at": object}
    )


def apply_overrides(
    timings: pd.DataFrame, overrides: pd.DataFrame, timezones: Mapping[str, object]
) -> pd.DataFrame:
    """Market timings (sessions.TIMING_COLUMNS) with the overrides laid over them.

    A closure closes the day (no times, no bars expected); a late open moves the open, an early
    close the close (and marks the day an early close); the bars expected are counted again from
    the session that remains, minus the part of a lunch break inside it. Overrides of days the
    library has closed change nothing: the library's closure stands.
    """
    if overrides.empty or timings.empty:
        return timings
    local = [
        pd.NaT if at is None else local_moment(day.date(), at, timezones[mic])
        for mic, day, at in overrides[["mic", "session_date", "at"]].itertuples(index=False)
    ]
    moments = overrides.assign(moment=pd.to_datetime(local, utc=True))
    by_kind = {
        kind: moments.loc[moments["kind"] == kind, ["mic", "session_date", "moment"]].rename(
            columns={"moment": f"{kind}_utc"}
        )
        for kind in KINDS
    }
    keys = ["mic", "session_date"]
    corrected = timings.merge(by_kind[LATE_OPEN], on=keys, how="left", validate="one_to_one")
    corrected = corrected.merge(by_kind[EARLY_CLOSE], on=keys, how="left", validate="one_to_one")
    closed = corrected.set_index(keys).index.isin(by_kind[CLOSED].set_index(keys).index)
    late = corrected[f"{LATE_OPEN}_utc"].notna() & corrected["is_open"]
    early = corrected[f"{EARLY_CLOSE}_utc"].notna() & corrected["is_open"]
    corrected.loc[late, "open_utc"] = corrected.loc[late, f"{LATE_OPEN}_utc"]
    corrected.loc[early, "close_utc"] = corrected.loc[early, f"{EARLY_CLOSE}_utc"]
    corrected.loc[early, "early_close"] = True
    changed = late | early
    if changed.any():
        corrected.loc[changed, "expected_minute_bars"] = _minutes_in_session(corrected.loc[changed])
    time_columns = ["open_utc", "close_utc", "break_start_utc", "break_end_utc"]
    corrected.loc[closed, time_columns] = pd.NaT
    corrected.loc[closed, ["is_open", "early_close"]] = False
    corrected.loc[closed, "expected_minute_bars"] = 0
    return corrected.loc[:, list(timings.columns)].astype(timings.dtypes.to_dict())


def _minutes_in_session(timings: pd.DataFrame) -> pd.Series:
    """Whole minutes from open to close, less the part of the lunch break between them; none
    when a correction recorded against an older release leaves the open after the close."""
    length = timings["close_utc"] - timings["open_utc"]
    break_start = timings["break_start_utc"].where(
        timings["break_start_utc"] > timings["open_utc"], timings["open_utc"]
    )
    break_end = timings["break_end_utc"].where(
        timings["break_end_utc"] < timings["close_utc"], timings["close_utc"]
    )
    has_break = timings["break_start_utc"].notna() & (break_end > break_start)
    in_break = (break_end - break_start).where(has_break, pd.Timedelta(0))
    return ((length - in_break) // MINUTE).clip(lower=0).astype("int64")


# What a day's re-evaluation materialises after a change of its corrections: a closure recorded
# or removed changes which ticker-days are expected (closed ones are recorded `closed`, reopened
# ones fetched); a late open or early close only changes how stored bars are judged, so they are
# validated again from the stored raw quotes, with no provider call.
TIMINGS_ONLY = ("market_timings",)
WHOLE_CHAIN = ("market_timings", "raw_quotes", "validated_quotes", "candles")
STORED_BARS_AGAIN = ("market_timings", "validated_quotes", "candles")


@dataclass(frozen=True)
class Reevaluation:
    """One day to materialise again: which assets, for which tickers (empty: market timings
    only), because of which changed overrides (`changes`: a stable text naming them)."""

    day: date
    assets: tuple[str, ...]
    tickers: tuple[str, ...]
    changes: str


def reevaluations(
    changed: Mapping[str, CalendarOverride],
    expected: pd.DataFrame,
    materialised: set[tuple[str, date]],
) -> list[Reevaluation]:
    """The runs that bring the days of `changed` overrides (by a label naming the change, e.g.
    its row id and whether it was recorded or removed) up to date.

    `expected` holds (trade_date, ticker, exchange) of the tickers the watch list counts on those
    days; `materialised` the (mic, day) pairs whose market timings are stored. A day nobody has
    materialised needs nothing: its first run lays the corrections over it.
    """
    groups: dict[tuple[date, tuple[str, ...]], tuple[set[str], list[str]]] = {}
    for label, override in sorted(changed.items()):
        if (override.mic, override.session_date) not in materialised:
            continue
        on_day = expected[
            (expected["exchange"] == override.mic)
            & (expected["trade_date"] == pd.Timestamp(override.session_date))
        ]
        tickers = set(on_day["ticker"])
        if not tickers:
            assets = TIMINGS_ONLY
        elif override.kind == CLOSED:
            assets = WHOLE_CHAIN
        else:
            assets = STORED_BARS_AGAIN
        names, labels = groups.setdefault((override.session_date, assets), (set(), []))
        names.update(tickers)
        labels.append(label)
    return [
        Reevaluation(day, assets, tuple(sorted(tickers)), ",".join(labels))
        for (day, assets), (tickers, labels) in sorted(groups.items())
    ]
