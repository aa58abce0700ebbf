"""`quality_alerts_sensor`: one alert per failed check evaluation and per failed run, to a Slack
webhook.

Each tick reads the instance's new check evaluations and run failures after the cursor (an event
storage id), so every failure is seen once however often the sensor ticks. A check evaluation is
about one day and names its failing ticker-days; a check that keeps failing on the same day
about the same ticker-days is alerted when it starts failing, not again on every re-run or
re-evaluation.

Alerts go to CANDLE_ALERT_WEBHOOK_URL (Slack's incoming-webhook JSON) and always to the sensor's
log; without a URL the log is all. When the webhook refuses an alert, the tick stops there and the
next tick tries again from that event.
"""

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.events import DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from candle_pipeline.checks.quality import OFFENDING_KEY, SCORE_KEY
from candle_pipeline.domain.alerts import Alert, check_alert, run_alert, slack_payload
from candle_pipeline.resources.alerts import AlertDeliveryError, AlertWebhookResource
from candle_pipeline.runs import RANGE_END_TAG, RANGE_START_TAG, failure_message
from candle_pipeline.settings import (
    ALERT_EVENTS_PER_TICK,
    ALERT_SENSOR_INTERVAL_SECONDS,
    ALERT_SEVERITIES,
)

WATCHED_EVENTS = {DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.RUN_FAILURE}
DECIDED = (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)
# How far back a check's history is read to find its previous result.
HISTORY_DEPTH = 5
# Dagster's documented tag of a run of one partition.
PARTITION_TAG = "dagster/partition"


@dg.sensor(
    name="quality_alerts_sensor",
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one alert per failed check and failed run to CANDLE_ALERT_WEBHOOK_URL.",
)
def quality_alerts_sensor(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource
) -> dg.SensorResult:
    storage = context.instance.event_log_storage
    if context.cursor is None:
        start = storage.get_maximum_record_id() or 0
        return dg.SensorResult(
            skip_reason=f"watching failures from event {start} on", cursor=str(start)
        )
    cursor = int(context.cursor)
    entries = storage.get_logs_for_all_runs_by_log_id(
        after_cursor=cursor, dagster_event_type=WATCHED_EVENTS, limit=ALERT_EVENTS_PER_TICK
    )
    sent = 0
    for storage_id in sorted(entries):
        alert = alert_for(context, alert_webhook, entries[storage_id])
        if alert is not None:
            context.log.warning(alert.text)
            if alert_webhook.enabled:
                try:
                    alert_webhook.post(slack_payload(alert))
                except AlertDeliveryError as error:
                    context.log.error(f"{error}; retrying from event {storage_id} next tick")
                    break
            sent += 1
        cursor = storage_id
    where = "the webhook and the log" if alert_webhook.enabled else "the log only"
    return dg.SensorResult(
        skip_reason=f"{sent} alert(s) to {where}; {len(entries)} event(s) read",
        cursor=str(cursor),
    )


def alert_for(
    context: dg.SensorEvaluationContext,
    webhook: AlertWebhookResource,
    entry: EventLogEntry,
) -> Alert | None:
    """The alert an event calls for, or None."""
    event = entry.dagster_event
    if event is None:
        return None
    if event.event_type == DagsterEventType.RUN_FAILURE:
        return _run_failure_alert(context, webhook, entry)
    evaluation = event.asset_check_evaluation_data
    if evaluation.passed or _rank(evaluation.severity.value) < _rank(webhook.min_severity):
        return None
    if _was_failing(context, evaluation, entry):
        context.log.info(
            f"{evaluation.asset_check_key.to_user_string()} "
            f"{evaluation.partition or ''} is still failing; alerted when it started"
        )
        return None
    score = evaluation.metadata.get(SCORE_KEY)
    return check_alert(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        severity=evaluation.severity.value,
        description=evaluation.description,
        ticker=None,
        day=evaluation.partition,
        score=score.value if score is not None else None,
        offending=_subject(evaluation),
        run_url=webhook.run_url(entry.run_id),
    )


def _subject(evaluation: dg.AssetCheckEvaluation) -> str | None:
    """The ticker-days a failed evaluation is about."""
    offending = evaluation.metadata.get(OFFENDING_KEY)
    return offending.value if offending is not None else None


def _rank(severity: str) -> int:
    return ALERT_SEVERITIES.index(severity)


def _was_failing(
    context: dg.SensorEvaluationContext, evaluation: dg.AssetCheckEvaluation, entry: EventLogEntry
) -> bool:
    """True when the check's previous result (same partition, earlier run) was the same failure:
    failed too, about the same ticker-days."""
    history = context.instance.event_log_storage.get_asset_check_execution_history(
        evaluation.asset_check_key,
        limit=HISTORY_DEPTH,
        status=set(DECIDED),
        partition_filter=PartitionKeyFilter(key=evaluation.partition),
    )
    earlier = [
        record
        for record in history
        if record.run_id != entry.run_id
        and record.event
        and record.event.timestamp < entry.timestamp
    ]
    if not earlier or earlier[0].status != AssetCheckExecutionRecordStatus.FAILED:
        return False
    previous = earlier[0].event.dagster_event.asset_check_evaluation_data
    return _subject(previous) == _subject(evaluation)


def _run_failure_alert(
    context: dg.SensorEvaluationContext, webhook: AlertWebhookResource, entry: EventLogEntry
) -> Alert | None:
    run = context.instance.get_run_by_id(entry.run_id)
    if run is None:
        return None
    failures = [
        record.dagster_event
        for record in context.instance.all_logs(entry.run_id, of_type=DagsterEventType.STEP_FAILURE)
        if record.dagster_event is not None
    ]
    return run_alert(
        job=run.job_name,
        partitions=_partitions(run.tags),
        error=failure_message(failures),
        run_url=webhook.run_url(entry.run_id),
    )


def _partitions(tags: dict[str, str]) -> str | None:
    if RANGE_START_TAG in tags:
        start = tags[RANGE_START_TAG]
        end = tags.get(RANGE_END_TAG, start)
        return start if start == end else f"{start} .. {end}"
    return tags.get(PARTITION_TAG)
