"""Which provider requests cover a set of days, within the provider's request windows.

A window is the (first, last) day of one request. Days are grouped greedily, oldest first, so each
request covers as many of the wanted days as the provider allows; asking for days the provider
does not serve at that interval is an error naming the limit, never an empty answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

# (longest span of one request, how far back from today the interval is served), in calendar
# days; None means no limit.
WindowLimits = Mapping[str, tuple[int | None, int | None]]


class RequestWindowError(ValueError):
    """Days that the provider does not serve at the asked interval; the message names the limit."""


def request_windows(
    days: Sequence[date], interval: str, today: date, limits: WindowLimits, provider: str
) -> list[tuple[date, date]]:
    """The fewest (first, last) windows covering `days`, each within `limits[interval]`."""
    if interval not in limits:
        raise RequestWindowError(
            f"{provider} does not serve the interval {interval!r}; "
            f"choose one of {', '.join(limits)}"
        )
    wanted = sorted(set(days))
    if not wanted:
        return []
    max_span, lookback = limits[interval]
    if lookback is not None:
        oldest = wanted[0]
        age = (today - oldest).days
        if age > lookback:
            raise RequestWindowError(
                f"{provider} serves {interval} bars for the last {lookback} days only; "
                f"{oldest} is {age} days ago (ask for a wider interval, e.g. 1d, for older days)"
            )
    windows: list[tuple[date, date]] = []
    first = last = wanted[0]
    for day in wanted[1:]:
        if max_span is not None and (day - first).days + 1 > max_span:
            windows.append((first, last))
            first = day
        last = day
    windows.append((first, last))
    return windows
