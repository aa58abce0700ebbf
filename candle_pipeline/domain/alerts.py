"""Alerts: what failed checks and runs tell a person, as digests.

A backfill can fail the same check on hundreds of days; a person wants one message saying so,
naming the first ticker-days and the total, not one message per day. `check_digest` makes that
message from the failed evaluations of one check in one run; `run_alert` is one failed run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Check failures of at least this severity are alerted (the lowest first); failed runs always are.
ALERT_SEVERITIES = ("WARN", "ERROR")
# Error messages and check results are cut to this many characters in an alert.
ALERT_DETAIL_CHARS = 500
# Days named in a digest, and ticker-days named in it, before "... and N more".
DIGEST_DAYS_SHOWN = 5
DIGEST_TICKER_DAYS_SHOWN = 10


@dataclass(frozen=True)
class Alert:
    """A headline, labelled facts (check, days, ticker-days, ...) and the run to open."""

    title: str
    facts: tuple[tuple[str, str], ...]
    run_url: str

    @property
    def text(self) -> str:
        """One line for logs."""
        facts = "; ".join(f"{label}: {value}" for label, value in self.facts)
        return f"{self.title} | {facts} | {self.run_url}"

    @property
    def markdown(self) -> str:
        """The body of the message: one fact per line and a link to the run."""
        lines = [f"**{label}:** {value}" for label, value in self.facts]
        return "\n".join([*lines, f"[Open the run in Dagster]({self.run_url})"])


@dataclass(frozen=True)
class FailedEvaluation:
    """One failed evaluation of a check: its day (None for a check of a whole run or of the
    warehouse), the ticker-days it names, how many it is about, its lowest score and result."""

    day: str | None
    offending: str | None
    offending_count: int
    score: float | None
    description: str | None


def check_digest(
    *,
    asset: str,
    check: str,
    severity: str,
    failures: Sequence[FailedEvaluation],
    run_url: str,
) -> Alert:
    """One alert for the failed evaluations of one check in one run, however many days."""
    days = sorted({failure.day for failure in failures if failure.day})
    facts = [("Check", f"{asset} / {check} ({severity})")]
    if days:
        facts.append(("Days", _first(days, DIGEST_DAYS_SHOWN)))
    named = [
        f"{failure.day} {item}" if failure.day and len(failures) > 1 else item
        for failure in failures
        if failure.offending
        for item in _items(failure.offending)
    ]
    total = sum(failure.offending_count for failure in failures)
    if named:
        facts.append(("Ticker-days", _first(named, DIGEST_TICKER_DAYS_SHOWN, total)))
    scores = [failure.score for failure in failures if failure.score is not None]
    if scores:
        facts.append(("Lowest score", f"{min(scores):.4f}"))
    if len(failures) == 1 and failures[0].description:
        facts.append(("Result", shorten(failures[0].description)))
    where = ""
    if len(days) == 1:
        where = f" for {days[0]}"
    elif days:
        where = f" on {len(days)} days ({days[0]} .. {days[-1]})"
    return Alert(
        title=f"Check failed: {asset} / {check}{where}", facts=tuple(facts), run_url=run_url
    )


def run_alert(*, job: str, partitions: str | None, error: str, run_url: str) -> Alert:
    facts = [("Job", job)]
    if partitions:
        facts.append(("Partitions", partitions))
    facts.append(("Error", shorten(error)))
    return Alert(title=f"Run failed: {job}", facts=tuple(facts), run_url=run_url)


def _items(offending: str) -> list[str]:
    """The names of an evaluation's ticker-days, without its own "... (N in all)" tail."""
    return [item for item in offending.split(" ... ", maxsplit=1)[0].split(", ") if item]


def _first(items: Sequence[str], shown: int, total: int | None = None) -> str:
    """The first `shown` items, and how many there are in all when that is more."""
    count = max(total or 0, len(items))
    text = ", ".join(items[:shown])
    return f"{text} ... ({count} in all)" if count > min(shown, len(items)) else text


def shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ALERT_DETAIL_CHARS else f"{flat[: ALERT_DETAIL_CHARS - 3]}..."
