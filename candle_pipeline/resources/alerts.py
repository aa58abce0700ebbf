"""The alert resource: posts alerts to a Slack-compatible incoming webhook, when one is set."""

from collections.abc import Mapping

import dagster as dg
import requests

from candle_pipeline.settings import ENV_ALERT_WEBHOOK_URL, WEBHOOK_TIMEOUT_SECONDS


class AlertDeliveryError(RuntimeError):
    """The webhook did not take an alert; the message never repeats the (secret) URL."""


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts go. `url` comes from CANDLE_ALERT_WEBHOOK_URL; None: the Dagster log only."""

    url: str | None = None
    dagster_ui_url: str
    min_severity: str

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url}/runs/{run_id}"

    def post(self, payload: Mapping[str, object]) -> None:
        """POST `payload` as JSON; an AlertDeliveryError when the webhook does not accept it."""
        if not self.url:
            raise AlertDeliveryError(f"{ENV_ALERT_WEBHOOK_URL} is not set")
        try:
            response = requests.post(self.url, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise AlertDeliveryError(
                f"the alert webhook ({ENV_ALERT_WEBHOOK_URL}) could not be reached: "
                f"{type(error).__name__}"
            ) from None
        if not response.ok:
            raise AlertDeliveryError(
                f"the alert webhook ({ENV_ALERT_WEBHOOK_URL}) answered HTTP {response.status_code}"
            )
