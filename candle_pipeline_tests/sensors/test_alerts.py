"""quality_alerts_sensor on a real instance, its alerts posted to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.alerts import AlertWebhookResource
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline.settings import ENV_ALERT_WEBHOOK_URL, QualitySettings
from candle_pipeline_tests.conftest import create_database, settings_for
from candle_pipeline_tests.quality import corrupt
from candle_pipeline_tests.quality.test_quality_pipeline import Pipeline

WEBHOOK_PATH = "/services/T000/B000/secret-token"


class Receiver:
    """An HTTP server on localhost that records every POST body and answers `status`."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.status == 200:
                    receiver.posts.append(
                        {"path": self.path, "type": self.headers["Content-Type"], **body}
                    )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{WEBHOOK_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def evaluate(
    instance: dg.DagsterInstance, webhook: AlertWebhookResource, cursor: str | None
) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": webhook}
    ) as context:
        return quality_alerts_sensor(context)


@pytest.fixture
def bad_spy_week(pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path):
    """SPY's week with a 60% jump on 2013-10-07 and a third of 2013-10-08 missing."""
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    for day, corruption in (
        ("2013-10-07", corrupt.jump_60_percent),
        ("2013-10-08", corrupt.third_removed),
    ):
        corrupt.write_day(csv_dir, "SPY", day, corruption(corrupt.read_day("SPY", day)))
    return Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)


def test_each_failure_is_posted_once(
    bad_spy_week: Pipeline, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ALERT_WEBHOOK_URL, receiver.url)
    quality = QualitySettings.from_env()
    resources = build_resources(settings_for(bad_spy_week.csv_dir), bad_spy_week.url, quality)
    webhook = resources["alert_webhook"]
    instance = bad_spy_week.instance

    first = evaluate(instance, webhook, None)
    assert first.cursor is not None and receiver.posts == []

    run = bad_spy_week.materialize(["SPY"], date(2013, 10, 4), date(2013, 10, 8))
    assert not run.success
    second = evaluate(instance, webhook, first.cursor)
    assert len(receiver.posts) == 2, [post["text"] for post in receiver.posts]
    jump, gap = sorted(receiver.posts, key=lambda post: post["text"])
    assert {post["path"] for post in receiver.posts} == {WEBHOOK_PATH}
    assert {post["type"] for post in receiver.posts} == {"application/json"}
    assert jump["text"].startswith(
        "Check failed: validated_quotes / quality_score for SPY 2013-10-07 | "
    )
    assert "Score: 0.4981" in jump["text"]
    assert "Score: 0.6667" in gap["text"] and "SPY 2013-10-08" in gap["text"]
    run_link = f"<http://localhost:3000/runs/{run.run_id}|Open the run in Dagster>"
    assert jump["blocks"][0]["text"]["text"].endswith(run_link)

    assert evaluate(instance, webhook, second.cursor).cursor == second.cursor
    assert len(receiver.posts) == 2, "the next tick finds nothing new"

    again = bad_spy_week.materialize(["SPY"], date(2013, 10, 7), date(2013, 10, 8))
    assert not again.success
    third = evaluate(instance, webhook, second.cursor)
    assert len(receiver.posts) == 2, "a day that keeps failing is alerted once"

    doubled = corrupt.duplicated_timestamps(corrupt.read_day("SPY", "2013-10-11"))
    corrupt.write_day(bad_spy_week.csv_dir, "SPY", "2013-10-11", doubled)
    broken = bad_spy_week.materialize(["SPY"], date(2013, 10, 11), date(2013, 10, 11))
    assert not broken.success
    fourth = evaluate(instance, webhook, third.cursor)
    assert len(receiver.posts) == 3
    failed_run = receiver.posts[-1]["text"]
    assert failed_run.startswith("Run failed: __ASSET_JOB | Job: __ASSET_JOB; Partitions: ")
    assert "2013-10-11|SPY" in failed_run and "share a timestamp" in failed_run
    assert broken.run_id in failed_run

    # Freshness evaluated again and again: one alert per missing day, not per evaluation.
    for as_of in ("2013-10-08T23:00:00Z", "2013-10-08T23:30:00Z", "2013-10-09T12:00:00Z"):
        assert not bad_spy_week.freshness(as_of).passed
    fifth = evaluate(instance, webhook, fourth.cursor)
    assert len(receiver.posts) == 4
    stale = receiver.posts[-1]["text"]
    assert stale.startswith("Check failed: candles / freshness | ")
    assert "Ticker-days: 2013-10-08|SPY" in stale
    assert not bad_spy_week.freshness("2013-10-09T23:00:00Z").passed
    evaluate(instance, webhook, fifth.cursor)
    assert len(receiver.posts) == 5
    assert "Ticker-days: 2013-10-09|SPY" in receiver.posts[-1]["text"], "a new day is a new failure"


def test_without_a_url_alerts_go_to_the_log_and_a_refused_alert_is_retried(
    bad_spy_week: Pipeline, receiver: Receiver, capfd: pytest.CaptureFixture[str]
) -> None:
    instance = bad_spy_week.instance
    log_only = AlertWebhookResource(
        url=None, dagster_ui_url="http://dagster.example", min_severity="ERROR"
    )
    start = evaluate(instance, log_only, None).cursor
    assert not bad_spy_week.materialize(["SPY"], date(2013, 10, 7), date(2013, 10, 7)).success

    logged = evaluate(instance, log_only, start)
    # Read: quality_score, spikes, gaps and stale_runs evaluations, and the run's failure.
    assert logged.skip_reason.skip_message == "1 alert(s) to the log only; 5 event(s) read"
    assert receiver.posts == []

    webhook = AlertWebhookResource(
        url=receiver.url, dagster_ui_url="http://dagster.example", min_severity="ERROR"
    )
    receiver.status = 500
    capfd.readouterr()
    refused = evaluate(instance, webhook, start)
    assert refused.cursor == start, "the refused alert is tried again on the next tick"
    log = capfd.readouterr().err
    assert "the alert webhook (CANDLE_ALERT_WEBHOOK_URL) answered HTTP 500" in log
    assert WEBHOOK_PATH not in log, "the webhook URL is a secret"
    receiver.status = 200
    delivered = evaluate(instance, webhook, start)
    assert [post["text"].split(" | ")[0] for post in receiver.posts] == [
        "Check failed: validated_quotes / quality_score for SPY 2013-10-07"
    ]
    assert "http://dagster.example/runs/" in receiver.posts[0]["text"]
    assert delivered.cursor == logged.cursor

    warnings_too = AlertWebhookResource(
        url=receiver.url, dagster_ui_url="http://dagster.example", min_severity="WARN"
    )
    evaluate(instance, warnings_too, start)
    checks = sorted(post["text"].split(" | ")[0] for post in receiver.posts[1:])
    assert checks == [
        "Check failed: validated_quotes / quality_score for SPY 2013-10-07",
        "Check failed: validated_quotes / spikes",
    ]
