"""quality_alerts_sensor on a real instance, reading the per-day check evaluations of real runs,
its alerts posted to a real local HTTP receiver.

The runs here leave out `candles / freshness`, which is evaluated as of the wall clock in every
run; the tests evaluate it on its own, as of a given moment.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from candle_pipeline import runs
from candle_pipeline.definitions import ASSETS
from candle_pipeline.jobs import JOBS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.alerts import AlertWebhookResource
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline_tests.conftest import create_database, definitions_for, settings_for, watch
from candle_pipeline_tests.quality import corrupt

pytestmark = pytest.mark.integration

WEBHOOK_PATH = "/services/T000/B000/secret-token"
UI = "http://dagster.example"
MONDAY, TUESDAY, WEDNESDAY = date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9)


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

    def titles(self) -> list[str]:
        return [post["text"].split(" | ")[0] for post in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def webhook(url: str | None, min_severity: str = "ERROR") -> AlertWebhookResource:
    return AlertWebhookResource(url=url, dagster_ui_url=UI, min_severity=min_severity)


def evaluate(
    instance: dg.DagsterInstance, alert_webhook: AlertWebhookResource, cursor: str | None
) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": alert_webhook}
    ) as context:
        return quality_alerts_sensor(context)


def skip_message(result: dg.SensorResult) -> str:
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


class Pipeline:
    """SPY and AIG watched from 2013-10-04, their bars from a csv folder, a Dagster instance."""

    def __init__(self, url: str, csv_dir: Path, instance: dg.DagsterInstance) -> None:
        self.csv_dir = csv_dir
        self.instance = instance
        resources = build_resources(settings_for(csv_dir), url)
        self.defs = dg.Definitions(assets=ASSETS, jobs=JOBS, resources=resources)
        self.freshness_job = definitions_for(url, csv_dir).resolve_job_def("candles_freshness_job")
        watch(url, ["SPY", "AIG"], date(2013, 10, 4))

    def materialize(self, start: date, end: date, **kwargs: object) -> runs.RunOutcome:
        [outcome] = runs.materialize(self.defs, self.instance, start, end, **kwargs)
        assert outcome.success, outcome.error
        return outcome

    def freshness(self, as_of: str) -> dg.AssetCheckEvaluation:
        result = self.freshness_job.execute_in_process(
            instance=self.instance,
            run_config={"ops": {"candles_freshness": {"config": {"as_of": as_of}}}},
        )
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation


@pytest.fixture
def bad_spy(pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path) -> Pipeline:
    """SPY with a 60% jump on Monday 2013-10-07 and a third of Tuesday 2013-10-08 missing; AIG
    clean."""
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    corrupt.copy_ticker(csv_dir, "AIG")
    for day, corruption in (
        ("2013-10-07", corrupt.jump_60_percent),
        ("2013-10-08", corrupt.third_removed),
    ):
        corrupt.write_day(csv_dir, "SPY", day, corruption(corrupt.read_day("SPY", day)))
    return Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance)


def test_each_failure_is_posted_once_naming_its_ticker_days(
    bad_spy: Pipeline, receiver: Receiver
) -> None:
    instance = bad_spy.instance
    alerts = webhook(receiver.url)
    first = evaluate(instance, alerts, None)
    assert first.cursor is not None and receiver.posts == []

    run = bad_spy.materialize(MONDAY, TUESDAY)
    second = evaluate(instance, alerts, first.cursor)
    assert receiver.titles() == [
        "Check failed: validated_quotes / quality_score for 2013-10-07",
        "Check failed: validated_quotes / quality_score for 2013-10-08",
    ], "one alert per failing day; the WARN checks are below the minimum severity"
    monday, tuesday = receiver.posts
    assert {post["path"] for post in receiver.posts} == {WEBHOOK_PATH}
    assert {post["type"] for post in receiver.posts} == {"application/json"}
    assert monday["text"] == (
        "Check failed: validated_quotes / quality_score for 2013-10-07 | "
        "Check: validated_quotes / quality_score (ERROR); Day: 2013-10-07; "
        "Ticker-days: SPY 0.4981; Score: 0.4981; "
        "Result: 1 of 2 scored ticker-day(s) below 0.8: SPY 0.4981 | "
        f"{UI}/runs/{run.run_id}"
    )
    assert "Ticker-days: SPY 0.6667" in tuesday["text"]
    assert monday["blocks"][0]["text"]["text"].endswith(
        f"<{UI}/runs/{run.run_id}|Open the run in Dagster>"
    )
    assert "*Ticker-days:* SPY 0.4981" in monday["blocks"][0]["text"]["text"]

    quiet = evaluate(instance, alerts, second.cursor)
    assert quiet.cursor == second.cursor and len(receiver.posts) == 2, "nothing new"

    # The blocked days are fetched again and fail again about the same ticker-day.
    bad_spy.materialize(MONDAY, TUESDAY)
    third = evaluate(instance, alerts, second.cursor)
    assert len(receiver.posts) == 2, "a day that keeps failing the same way is alerted once"
    # Read: quality_score and coverage of each day, spikes, gaps and stale_runs of the run.
    assert skip_message(third) == "0 alert(s) to the webhook and the log; 7 event(s) read"

    # Monday's AIG turns bad too: the same check on the same day, about other ticker-days.
    swapped = corrupt.high_low_swapped(corrupt.read_day("AIG", "2013-10-07"))
    corrupt.write_day(bad_spy.csv_dir, "AIG", "2013-10-07", swapped)
    bad_spy.materialize(MONDAY, MONDAY, tickers=["AIG"], refetch=True)
    fourth = evaluate(instance, alerts, third.cursor)
    assert receiver.titles()[2:] == [
        "Check failed: validated_quotes / quality_score for 2013-10-07"
    ]
    assert "Ticker-days: AIG 0.0021, SPY 0.4981" in receiver.posts[2]["text"]

    # A run that fails: a named ticker that is not on the watch list.
    failed = bad_spy.defs.resolve_job_def("market_data_job").execute_in_process(
        instance=instance,
        run_config=runs.run_config(["NVDA"]),
        tags=runs.DayRange(WEDNESDAY, WEDNESDAY).tags,
        raise_on_error=False,
    )
    assert not failed.success
    evaluate(instance, alerts, fourth.cursor)
    assert receiver.posts[3]["text"] == (
        "Run failed: market_data_job | Job: market_data_job; Partitions: 2013-10-09; "
        "Error: market_data: ticker(s) NVDA are not on the watch list: add them with "
        "`candle-pipeline tickers add` (days 2013-10-09..2013-10-09) | "
        f"{UI}/runs/{failed.run_id}"
    )
    assert len(receiver.posts) == 4


def test_an_unpartitioned_check_is_alerted_once_per_set_of_ticker_days(
    bad_spy: Pipeline, receiver: Receiver
) -> None:
    """Freshness, evaluated again and again: one alert per set of stale ticker-days."""
    instance = bad_spy.instance
    alerts = webhook(receiver.url)
    start = evaluate(instance, alerts, None).cursor
    bad_spy.materialize(MONDAY, TUESDAY)
    cursor = evaluate(instance, alerts, start).cursor
    receiver.posts.clear()

    for as_of in ("2013-10-08T23:00:00Z", "2013-10-08T23:30:00Z", "2013-10-09T12:00:00Z"):
        assert not bad_spy.freshness(as_of).passed
    cursor = evaluate(instance, alerts, cursor).cursor
    assert receiver.titles() == ["Check failed: candles / freshness"]
    assert "Ticker-days: SPY 2013-10-08" in receiver.posts[0]["text"]

    assert not bad_spy.freshness("2013-10-09T23:00:00Z").passed
    evaluate(instance, alerts, cursor)
    assert len(receiver.posts) == 2, "a new due day is a new failure"
    assert "Ticker-days: AIG 2013-10-09, SPY 2013-10-09" in receiver.posts[1]["text"]


def test_without_a_url_alerts_go_to_the_log_and_a_refused_alert_is_retried(
    bad_spy: Pipeline, receiver: Receiver, capfd: pytest.CaptureFixture[str]
) -> None:
    instance = bad_spy.instance
    log_only = webhook(None)
    start = evaluate(instance, log_only, None).cursor
    bad_spy.materialize(MONDAY, MONDAY)

    logged = evaluate(instance, log_only, start)
    # Read: the day's quality_score, coverage, spikes, gaps and stale_runs evaluations.
    assert skip_message(logged) == "1 alert(s) to the log only; 5 event(s) read"
    assert receiver.posts == []

    receiver.status = 500
    capfd.readouterr()
    refused = evaluate(instance, webhook(receiver.url), start)
    assert refused.cursor == start, "the refused alert is tried again on the next tick"
    log = capfd.readouterr().err
    assert "the alert webhook (CANDLE_ALERT_WEBHOOK_URL) answered HTTP 500" in log
    assert WEBHOOK_PATH not in log, "the webhook URL is a secret"
    receiver.status = 200
    delivered = evaluate(instance, webhook(receiver.url), start)
    assert receiver.titles() == ["Check failed: validated_quotes / quality_score for 2013-10-07"]
    assert delivered.cursor == logged.cursor

    evaluate(instance, webhook(receiver.url, min_severity="WARN"), start)
    # The warning checks are evaluated once per run, over its days.
    assert sorted(receiver.titles()[1:]) == [
        "Check failed: validated_quotes / quality_score for 2013-10-07",
        "Check failed: validated_quotes / spikes",
    ]
    [spikes] = [post["text"] for post in receiver.posts if "/ spikes" in post["text"]]
    assert "Check: validated_quotes / spikes (WARN)" in spikes
    assert "Ticker-days: SPY 2013-10-07 (1)" in spikes
