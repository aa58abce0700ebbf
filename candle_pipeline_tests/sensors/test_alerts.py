"""quality_alerts_sensor on a real instance, reading the per-day check evaluations of real runs,
its alerts sent through apprise (a `json://` URL) to a real local HTTP receiver.

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
from candle_pipeline.definitions import build_assets
from candle_pipeline.jobs import JOBS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.alerts import AlertWebhookResource
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.sensors.alerts import quality_alerts_sensor
from candle_pipeline.settings import get_settings
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
                        {**body, "path": self.path, "content_type": self.headers["Content-Type"]}
                    )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_port}{WEBHOOK_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def titles(self) -> list[str]:
        return [post["title"] for post in self.posts]

    def facts(self, index: int) -> dict[str, str]:
        """The `**Label:** value` lines of an alert's message."""
        lines = self.posts[index]["message"].splitlines()
        pairs = [line[2:].split(":** ", 1) for line in lines if line.startswith("**")]
        return dict(pairs)


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

    def __init__(
        self,
        url: str,
        csv_dir: Path,
        instance: dg.DagsterInstance,
        tickers: tuple[str, ...] = ("SPY", "AIG"),
    ) -> None:
        self.url = url
        self.csv_dir = csv_dir
        self.instance = instance
        resources = build_resources(settings_for(csv_dir), url)
        self.defs = dg.Definitions(
            assets=build_assets(get_settings()), jobs=JOBS, resources=resources
        )
        self.freshness_job = definitions_for(url, csv_dir).resolve_job_def("candles_freshness_job")
        watch(url, list(tickers), date(2013, 10, 4))

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


def test_the_failures_of_a_check_in_a_run_are_one_digest_sent_once(
    bad_spy: Pipeline, receiver: Receiver
) -> None:
    instance = bad_spy.instance
    alerts = webhook(receiver.url)
    first = evaluate(instance, alerts, None)
    assert first.cursor is not None and receiver.posts == []

    run = bad_spy.materialize(MONDAY, TUESDAY)
    second = evaluate(instance, alerts, first.cursor)
    assert receiver.titles() == [
        "Check failed: validated_quotes / quality_score on 2 days (2013-10-07 .. 2013-10-08)"
    ], "one digest for the two failing days; the WARN checks are below the minimum severity"
    [digest] = receiver.posts
    assert (digest["path"], digest["content_type"]) == (WEBHOOK_PATH, "application/json")
    assert receiver.facts(0) == {
        "Check": "validated_quotes / quality_score (ERROR)",
        "Days": "2013-10-07, 2013-10-08",
        "Ticker-days": "2013-10-07 SPY 0.4981, 2013-10-08 SPY 0.6667",
        "Lowest score": "0.4981",
    }
    assert digest["message"].endswith(f"[Open the run in Dagster]({UI}/runs/{run.run_id})")

    quiet = evaluate(instance, alerts, second.cursor)
    assert quiet.cursor == second.cursor and len(receiver.posts) == 1, "nothing new"

    # The blocked days are fetched again and fail again about the same ticker-day.
    bad_spy.materialize(MONDAY, TUESDAY)
    third = evaluate(instance, alerts, second.cursor)
    assert len(receiver.posts) == 1, "a day that keeps failing the same way is alerted once"
    # Read: quality_score and coverage of each day, spikes, gaps and stale_runs of the run.
    assert skip_message(third) == "0 alert(s) to the alert URL(s) and the log; 7 event(s) read"

    # Monday's AIG turns bad too: the same check on the same day, about other ticker-days.
    swapped = corrupt.high_low_swapped(corrupt.read_day("AIG", "2013-10-07"))
    corrupt.write_day(bad_spy.csv_dir, "AIG", "2013-10-07", swapped)
    bad_spy.materialize(MONDAY, MONDAY, tickers=["AIG"], refetch=True)
    fourth = evaluate(instance, alerts, third.cursor)
    assert receiver.titles()[1:] == [
        "Check failed: validated_quotes / quality_score for 2013-10-07"
    ]
    assert receiver.facts(1)["Ticker-days"] == "AIG 0.0021, SPY 0.4981"
    assert receiver.facts(1)["Result"].startswith("2 of 2 scored ticker-day(s) below 0.8")

    # A run that fails: a named ticker that is not on the watch list.
    failed = bad_spy.defs.resolve_job_def("market_data_job").execute_in_process(
        instance=instance,
        run_config=runs.run_config(["NVDA"]),
        tags=runs.DayRange(WEDNESDAY, WEDNESDAY).tags,
        raise_on_error=False,
    )
    assert not failed.success
    evaluate(instance, alerts, fourth.cursor)
    assert receiver.titles()[2:] == ["Run failed: market_data_job"]
    assert receiver.facts(2) == {
        "Job": "market_data_job",
        "Partitions": "2013-10-09",
        "Error": "market_data: ticker(s) NVDA are not on the watch list: add them with "
        "`candle-pipeline tickers add` (days 2013-10-09..2013-10-09)",
    }


def test_a_long_failing_backfill_is_one_message_with_the_first_ticker_days_and_the_total(
    pg_server: LocalPostgres, instance: dg.DagsterInstance, tmp_path: Path, receiver: Receiver
) -> None:
    """NVDA has no data in the csv folder: every one of its days fails coverage."""
    csv_dir = tmp_path / "csv"
    corrupt.copy_ticker(csv_dir, "SPY")
    pipeline = Pipeline(create_database(pg_server, "warehouse"), csv_dir, instance, tickers=())
    watch(pipeline.url, ["NVDA"], date(2013, 9, 2))
    alerts = webhook(receiver.url)
    start = evaluate(instance, alerts, None).cursor
    run = pipeline.materialize(date(2013, 9, 2), date(2013, 10, 11))
    evaluate(instance, alerts, start)
    assert receiver.titles() == [
        "Check failed: raw_quotes / coverage on 29 days (2013-09-03 .. 2013-10-11)"
    ]
    facts = receiver.facts(0)
    assert facts["Days"] == (
        "2013-09-03, 2013-09-04, 2013-09-05, 2013-09-06, 2013-09-09 ... (29 in all)"
    )
    named, total = facts["Ticker-days"].split(" ... ")
    assert named.startswith(
        "2013-09-03 NVDA (no data from csv), 2013-09-04 NVDA (no data from csv), "
    )
    assert len(named.split(", ")) == 10
    assert total == "(29 in all)"
    assert receiver.posts[0]["message"].endswith(f"({UI}/runs/{run.run_id})")


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
    assert receiver.facts(0)["Ticker-days"] == "SPY 2013-10-08"

    assert not bad_spy.freshness("2013-10-09T23:00:00Z").passed
    evaluate(instance, alerts, cursor)
    assert len(receiver.posts) == 2, "a new due day is a new failure"
    assert receiver.facts(1)["Ticker-days"] == "AIG 2013-10-09, SPY 2013-10-09"


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
    assert receiver.posts == [] and refused.cursor is not None
    log = capfd.readouterr().err
    assert "an alert URL of CANDLE_ALERT_WEBHOOK_URL did not take the alert" in log
    assert "error=500" in log
    assert WEBHOOK_PATH not in log, "the webhook URL is a secret"
    receiver.status = 200
    delivered = evaluate(instance, webhook(receiver.url), refused.cursor)
    assert receiver.titles() == ["Check failed: validated_quotes / quality_score for 2013-10-07"], (
        "the refused alert is tried again on the next tick"
    )
    assert delivered.cursor == logged.cursor

    evaluate(instance, webhook(receiver.url, min_severity="WARN"), start)
    # The warning checks are evaluated once per run, over its days.
    assert sorted(receiver.titles()[1:]) == [
        "Check failed: validated_quotes / quality_score for 2013-10-07",
        "Check failed: validated_quotes / spikes",
    ]
    [spikes] = [i for i, post in enumerate(receiver.posts) if "/ spikes" in post["title"]]
    assert receiver.facts(spikes)["Check"] == "validated_quotes / spikes (WARN)"
    assert receiver.facts(spikes)["Ticker-days"] == "SPY 2013-10-07 (1)"
