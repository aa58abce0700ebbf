"""`settings_sensor`: the settings the daemon's code runs with, published for `doctor`.

The command line, the webserver and the daemon each read their settings when they start (from
the environment and `.env`). A daemon started before a change keeps its old settings and would
silently fetch with them; this sensor writes the settings its process runs with into the
instance's key-value store every minute, and `candle-pipeline doctor` compares them with its own.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from candle_pipeline.settings import settings_in_use

DAEMON_SETTINGS_KEY = "candle_pipeline/daemon_settings"
# How often the daemon records the settings it runs with (for `doctor`).
SETTINGS_SENSOR_INTERVAL_SECONDS = 60


@dg.sensor(
    name="settings_sensor",
    minimum_interval_seconds=SETTINGS_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records the settings the daemon's code runs with, for `candle-pipeline doctor`.",
)
def settings_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    settings = settings_in_use()
    record = {"seen_at": datetime.now(UTC).isoformat(), "settings": settings}
    context.instance.run_storage.set_cursor_values({DAEMON_SETTINGS_KEY: json.dumps(record)})
    shown = ", ".join(f"{name}={value}" for name, value in settings.items())
    return dg.SkipReason(f"running with {shown}")


def daemon_settings(instance: dg.DagsterInstance) -> tuple[str, dict[str, str]] | None:
    """When the daemon's settings were last recorded, and what they were (None: never)."""
    stored = instance.run_storage.get_cursor_values({DAEMON_SETTINGS_KEY}).get(DAEMON_SETTINGS_KEY)
    if not stored:
        return None
    record = json.loads(stored)
    return record["seen_at"], record["settings"]
