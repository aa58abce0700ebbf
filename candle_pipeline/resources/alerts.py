"""The alert resource: sends alerts through `apprise` to the URLs a user configures.

apprise is the maintained notification library with one URL scheme per service (Slack, Teams,
Discord, e-mail, PagerDuty, ntfy, a plain JSON POST and 100 more); a Slack incoming-webhook URL
(`https://hooks.slack.com/services/...`) works as it is. CANDLE_ALERT_WEBHOOK_URL holds one URL
or several, separated by commas or spaces. It is a secret: read through `dagster.EnvVar`, and
never repeated in a message or a log (apprise's own log, which names URLs, is captured here).
"""

import logging

import apprise
import dagster as dg

from candle_pipeline.domain.alerts import Alert

ENV_ALERT_WEBHOOK_URL = (
    "CANDLE_ALERT_WEBHOOK_URL"  # the `url` field, through dg.EnvVar; mapped in settings
)


class AlertDeliveryError(RuntimeError):
    """A URL did not take an alert; the message never repeats the (secret) URL."""


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts go. `url` comes from CANDLE_ALERT_WEBHOOK_URL; None: the Dagster log only."""

    url: str | None = None
    # Where the links of an alert point (CANDLE_DAGSTER_UI_URL).
    dagster_ui_url: str = "http://localhost:3000"
    # The least severe check failure alerted (CANDLE_ALERT_MIN_SEVERITY): WARN or ERROR.
    min_severity: str = "ERROR"

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url}/runs/{run_id}"

    def send(self, alert: Alert) -> None:
        """Deliver `alert` to every URL; an AlertDeliveryError when one does not take it."""
        if not self.url:
            raise AlertDeliveryError(f"{ENV_ALERT_WEBHOOK_URL} is not set")
        targets = apprise.Apprise()
        urls = self.url.replace(",", " ").split()
        with apprise.LogCapture(level=logging.WARNING) as captured:
            understood = [targets.add(url) for url in urls]
            if not all(understood):
                raise AlertDeliveryError(
                    f"{ENV_ALERT_WEBHOOK_URL}: {understood.count(False)} of {len(urls)} URL(s) "
                    "are not notification URLs apprise knows (https://appriseit.com)"
                )
            delivered = targets.notify(
                title=alert.title, body=alert.markdown, body_format=apprise.NotifyFormat.MARKDOWN
            )
        if not delivered:
            reasons = [line for line in captured.getvalue().splitlines() if line.strip()]
            reason = _without(reasons[-1], urls) if reasons else "no reason given"
            raise AlertDeliveryError(
                f"an alert URL of {ENV_ALERT_WEBHOOK_URL} did not take the alert: {reason}"
            )


def _without(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<the URL>")
    return text
