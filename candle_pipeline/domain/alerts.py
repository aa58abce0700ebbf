"""Alerts: what a failed check or run tells a person, as Slack's incoming-webhook JSON."""

from __future__ import annotations

from dataclasses import dataclass

from candle_pipeline.settings import ALERT_DETAIL_CHARS

# Slack's mrkdwn needs these three escaped in any text we did not write ourselves.
_SLACK_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


@dataclass(frozen=True)
class Alert:
    """A headline, labelled facts (ticker, day, check, score, ...) and the run to open."""

    title: str
    facts: tuple[tuple[str, str], ...]
    run_url: str

    @property
    def text(self) -> str:
        """One line for logs and for clients that do not render blocks."""
        facts = "; ".join(f"{label}: {value}" for label, value in self.facts)
        return f"{self.title} | {facts} | {self.run_url}"


def check_alert(
    *,
    asset: str,
    check: str,
    severity: str,
    description: str | None,
    ticker: str | None,
    day: str | None,
    score: float | None,
    run_url: str,
    offending: str | None = None,
) -> Alert:
    """A failed check: of one ticker-day (`ticker`, `day`) or of several (`offending`)."""
    facts = [("Check", f"{asset} / {check} ({severity})")]
    if ticker:
        facts.append(("Ticker", ticker))
    if day:
        facts.append(("Day", day))
    if offending:
        facts.append(("Ticker-days", offending))
    if score is not None:
        facts.append(("Score", f"{score:.4f}"))
    if description:
        facts.append(("Result", _shorten(description)))
    where = " ".join(part for part in (ticker, day) if part)
    return Alert(
        title=f"Check failed: {asset} / {check}" + (f" for {where}" if where else ""),
        facts=tuple(facts),
        run_url=run_url,
    )


def run_alert(*, job: str, partitions: str | None, error: str, run_url: str) -> Alert:
    facts = [("Job", job)]
    if partitions:
        facts.append(("Partitions", partitions))
    facts.append(("Error", _shorten(error)))
    return Alert(title=f"Run failed: {job}", facts=tuple(facts), run_url=run_url)


def slack_payload(alert: Alert) -> dict[str, object]:
    """Slack's incoming-webhook message: `text` (fallback) and one mrkdwn section block."""
    lines = [
        f"*{_escape(alert.title)}*",
        *(f"*{label}:* {_escape(value)}" for label, value in alert.facts),
        f"<{alert.run_url}|Open the run in Dagster>",
    ]
    return {
        "text": alert.text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
    }


def _escape(text: str) -> str:
    for raw, escaped in _SLACK_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _shorten(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ALERT_DETAIL_CHARS else f"{flat[: ALERT_DETAIL_CHARS - 3]}..."
