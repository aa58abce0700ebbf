"""`quality_alerts_sensor`: failed checks and failed runs, sent as digests.

Each tick reads the instance's new check evaluations and run failures after the cursor (an event
storage id), so every failure is seen once however often the sensor ticks. A check evaluation is
about one day and names its failing ticker-days; the failed evaluations of one check in one run
become ONE alert (a backfill failing on 251 days is one message naming the first ticker-days and
the total), and a failed run is one alert. A check that keeps failing on the same day about the
same ticker-days is alerted when it starts failing, not again on every re-run.

Alerts go to CANDLE_ALERT_WEBHOOK_URL (any apprise URL, see resources/alerts.py) and always to the
sensor's log; without a URL the log is all. When a URL refuses an alert, the tick stops before
the events of that alert and the next tick tries again from there.
"""

from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from candle_pipeline.checks.quality import OFFENDING_COUNT_KEY, OFFENDING_KEY, SCORE_KEY
from candle_pipeline.dagster_internals import (
    AssetCheckExecutionRecordStatus,
    EventLogStorage,
    PartitionKeyFilter,
)
from candle_pipeline.domain.alerts import (
    ALERT_SEVERITIES,
    Alert,
    FailedEvaluation,
    check_digest,
    run_alert,
)
from candle_pipeline.resources.alerts import AlertDeliveryError, AlertWebhookResource
from candle_pipeline.runs import RANGE_END_TAG, RANGE_START_TAG, failure_message

WATCHED_EVENTS = {dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.RUN_FAILURE}
DECIDED = (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)
# How far back a check's history is read to find its previous result.
HISTORY_DEPTH = 5
# Dagster's documented tag of a run of one partition.
PARTITION_TAG = "dagster/partition"
ALERT_SENSOR_INTERVAL_SECONDS = 30
# Events read from the instance per sensor tick (a year-long backfill of one check is one
# digest); the cursor continues on the next tick.
ALERT_EVENTS_PER_TICK = 5000


@dg.sensor(
    name="quality_alerts_sensor",
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one digest per failed check per run, and one alert per failed run, to "
    "CANDLE_ALERT_WEBHOOK_URL.",
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
    entries = watched_events(storage, cursor)
    sent = 0
    for alert, first_id in digests(context, alert_webhook, entries):
        if alert is None:
            continue
        context.log.warning(alert.text)
        if alert_webhook.enabled:
            try:
                alert_webhook.send(alert)
            except AlertDeliveryError as error:
                context.log.error(f"{error}; trying again from event {first_id} next tick")
                return dg.SensorResult(
                    skip_reason=f"{sent} alert(s) sent, then one refused", cursor=str(first_id - 1)
                )
        sent += 1
    where = "the alert URL(s) and the log" if alert_webhook.enabled else "the log only"
    return dg.SensorResult(
        skip_reason=f"{sent} alert(s) to {where}; {len(entries)} event(s) read",
        cursor=str(max(entries, default=cursor)),
    )


def watched_events(storage: EventLogStorage, cursor: int) -> dict[int, dg.EventLogEntry]:
    """The first ALERT_EVENTS_PER_TICK watched events after `cursor` (one query per event type,
    as Dagster asks), by storage id."""
    found: dict[int, dg.EventLogEntry] = {}
    for event_type in WATCHED_EVENTS:
        found.update(
            storage.get_logs_for_all_runs_by_log_id(
                after_cursor=cursor, dagster_event_type=event_type, limit=ALERT_EVENTS_PER_TICK
            )
        )
    return {storage_id: found[storage_id] for storage_id in sorted(found)[:ALERT_EVENTS_PER_TICK]}


def digests(
    context: dg.SensorEvaluationContext,
    webhook: AlertWebhookResource,
    entries: dict[int, dg.EventLogEntry],
) -> list[tuple[Alert | None, int]]:
    """The alerts of `entries`, each with the first event it covers, in that order: a failed
    run's alert (None when the run is gone), a digest of the failed evaluations of one check in
    one run. After a refused alert the next tick starts at its first event, so
    nothing is lost; an alert already sent from later events may then be sent again."""
    failed: dict[tuple[str, dg.AssetCheckKey], list[tuple[int, dg.AssetCheckEvaluation]]]
    failed = defaultdict(list)
    singles: list[tuple[Alert | None, int]] = []
    for storage_id in sorted(entries):
        entry = entries[storage_id]
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.RUN_FAILURE:
            singles.append((_run_failure_alert(context, webhook, entry), storage_id))
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.passed or _rank(evaluation.severity.value) < _rank(webhook.min_severity):
            continue
        if _was_failing(context, evaluation, entry):
            context.log.info(
                f"{evaluation.asset_check_key.to_user_string()} "
                f"{evaluation.partition or ''} is still failing; alerted when it started"
            )
        else:
            failed[(entry.run_id, evaluation.asset_check_key)].append((storage_id, evaluation))
    grouped = [
        (_digest(webhook, run_id, [evaluation for _, evaluation in group]), group[0][0])
        for (run_id, _), group in failed.items()
    ]
    return sorted([*singles, *grouped], key=lambda pair: pair[1])


def _digest(
    webhook: AlertWebhookResource, run_id: str, evaluations: Sequence[dg.AssetCheckEvaluation]
) -> Alert:
    first = evaluations[0]
    return check_digest(
        asset=first.asset_key.to_user_string(),
        check=first.check_name,
        severity=first.severity.value,
        failures=[_failure(evaluation) for evaluation in evaluations],
        run_url=webhook.run_url(run_id),
    )


def _failure(evaluation: dg.AssetCheckEvaluation) -> FailedEvaluation:
    score = evaluation.metadata.get(SCORE_KEY)
    count = evaluation.metadata.get(OFFENDING_COUNT_KEY)
    offending = _subject(evaluation)
    return FailedEvaluation(
        day=evaluation.partition,
        offending=offending,
        offending_count=int(count.value) if count is not None else int(bool(offending)),
        score=float(score.value) if score is not None else None,
        description=evaluation.description,
    )


def _subject(evaluation: dg.AssetCheckEvaluation) -> str | None:
    """The ticker-days a failed evaluation is about."""
    offending = evaluation.metadata.get(OFFENDING_KEY)
    return offending.value if offending is not None else None


def _rank(severity: str) -> int:
    return ALERT_SEVERITIES.index(severity)


def _was_failing(
    context: dg.SensorEvaluationContext,
    evaluation: dg.AssetCheckEvaluation,
    entry: dg.EventLogEntry,
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
    context: dg.SensorEvaluationContext, webhook: AlertWebhookResource, entry: dg.EventLogEntry
) -> Alert | None:
    run = context.instance.get_run_by_id(entry.run_id)
    if run is None:
        return None
    failures = [
        record.dagster_event
        for record in context.instance.all_logs(
            entry.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        )
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
