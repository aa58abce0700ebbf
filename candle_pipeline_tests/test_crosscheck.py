"""The cross-check of two sources end to end: real PostgreSQL, real Dagster runs recorded in the
instance, market data from the bundled CSV sample and from Polygon's and Yahoo's recorded
answers (replayed)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from candle_pipeline import runs
from candle_pipeline.checks.crosscheck import MISMATCHES_KEY, NOT_COMPARED_KEY, SOURCE_MISMATCH
from candle_pipeline.cli import main
from candle_pipeline.definitions import build_assets
from candle_pipeline.jobs import JOBS
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.providers.csv_files import SAMPLE_DATA_DIR
from candle_pipeline.resources.catalog import build_resources
from candle_pipeline.settings import QualitySettings, Settings, get_settings
from candle_pipeline_tests.conftest import FIXTURES_DIR, create_database, table, watch

pytestmark = pytest.mark.integration

POLYGON_REPLAY = FIXTURES_DIR / "polygon-http"
YAHOO_REPLAY = FIXTURES_DIR / "yahoo-http"
# The bundled sample's AAPL, its close of 2005-04-01 2% off (hand-made; see its README).
CLOSE_OFF = FIXTURES_DIR / "csv-close-off"
TICKERS = ["AAPL", "AIG", "BAC", "IBM", "SPY"]
FIRST, LAST = date(2005, 4, 1), date(2005, 4, 4)
SESSIONS = ["2005-04-01", "2005-04-04"]
SOURCE_MISMATCH_KEY = dg.AssetCheckKey(dg.AssetKey("validated_quotes"), SOURCE_MISMATCH)
AAPL_MISMATCH = "AAPL 2005-04-01: close 41.718 from csv, 40.9 from polygon (2.00% apart)"


def definitions(url: str, csv_dir: Path, **env: str) -> dg.Definitions:
    env = {"CANDLE_CSV_DIR": str(csv_dir), "CANDLE_POLYGON_REPLAY_DIR": str(POLYGON_REPLAY), **env}
    resources = build_resources(Settings.from_env(env), url, QualitySettings.from_env(env))
    return dg.Definitions(assets=build_assets(get_settings()), jobs=JOBS, resources=resources)


def store(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    [outcome] = runs.materialize(defs, instance, FIRST, LAST)
    assert outcome.success, outcome.error


def recorded(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    """The source_mismatch evaluations the instance holds for the run, by partition."""
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [event.get_dagster_event().asset_check_evaluation_data for event in events]
    return {e.partition: e for e in evaluations if e.asset_check_key == SOURCE_MISMATCH_KEY}


def text(evaluation: dg.AssetCheckEvaluation, key: str) -> str:
    return evaluation.metadata[key].value


def test_csv_days_agree_with_polygon_within_the_tolerance(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, TICKERS, FIRST)
    defs = definitions(url, SAMPLE_DATA_DIR)
    store(defs, instance)

    outcome = runs.crosscheck(defs, instance, TICKERS, FIRST, LAST, against="polygon")
    assert outcome.success, outcome.error

    evaluations = recorded(instance, outcome.run_id)
    assert sorted(evaluations) == SESSIONS, "one evaluation per session with stored days"
    for evaluation in evaluations.values():
        assert evaluation.passed
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["compared_ticker_days"].value == len(TICKERS)
        assert evaluation.metadata["mismatched_ticker_days"].value == 0
        assert evaluation.description == "all 5 compared ticker-day(s) within 0.50%"
    assert [e.partition for e in outcome.evaluations] == SESSIONS


def test_a_close_two_percent_off_is_one_failed_evaluation_naming_both_closes_and_sources(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    defs = definitions(url, CLOSE_OFF)
    store(defs, instance)
    assert set(table(url, "raw_quotes")["source"]) == {"csv"}

    outcome = runs.crosscheck(defs, instance, ["AAPL"], FIRST, LAST, against="polygon")
    assert outcome.success, outcome.error

    evaluations = recorded(instance, outcome.run_id)
    failed = [e for e in evaluations.values() if not e.passed]
    assert [e.partition for e in failed] == ["2005-04-01"]
    [mismatch] = failed
    assert text(mismatch, MISMATCHES_KEY) == AAPL_MISMATCH
    assert AAPL_MISMATCH in mismatch.description
    assert mismatch.metadata["tolerance"].value == 0.005
    assert evaluations["2005-04-04"].passed


def test_a_tolerance_above_the_difference_lets_it_pass(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    defs = definitions(url, CLOSE_OFF)
    store(defs, instance)
    loose = definitions(url, CLOSE_OFF, CANDLE_CROSSCHECK_TOLERANCE="0.025")
    outcome = runs.crosscheck(loose, instance, ["AAPL"], FIRST, LAST, against="polygon")
    assert outcome.success, outcome.error
    assert all(e.passed for e in recorded(instance, outcome.run_id).values())


def test_days_a_fallback_served_are_cross_checked_in_the_same_run(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    # Yahoo has no recording of AAPL in 2005: it fails, the CSV folder serves, and the days are
    # compared with the next source, Polygon (Yahoo, which just refused, is not asked again).
    defs = definitions(
        url,
        CLOSE_OFF,
        CANDLE_SOURCE="yahoo",
        CANDLE_YAHOO_REPLAY_DIR=str(YAHOO_REPLAY),
        CANDLE_FALLBACK_SOURCES="csv,polygon",
    )
    [outcome] = runs.materialize(defs, instance, FIRST, LAST)
    assert outcome.success, outcome.error
    days = table(url, "ticker_days").set_index("trade_date")
    assert days.loc[FIRST, "source"] == "csv"
    assert days.loc[FIRST, "fallback_reason"].startswith("yahoo: ")

    evaluations = recorded(instance, outcome.run_id)
    assert sorted(evaluations) == SESSIONS
    assert not evaluations["2005-04-01"].passed
    assert text(evaluations["2005-04-01"], MISMATCHES_KEY) == AAPL_MISMATCH
    assert evaluations["2005-04-04"].passed
    assert evaluations["2005-04-04"].metadata["compared_ticker_days"].value == 1


def test_days_their_own_source_served_are_not_cross_checked(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    defs = definitions(url, CLOSE_OFF, CANDLE_FALLBACK_SOURCES="polygon")
    [outcome] = runs.materialize(defs, instance, FIRST, LAST)
    assert outcome.success, outcome.error
    assert recorded(instance, outcome.run_id) == {}


def test_without_another_source_the_days_are_reported_not_compared(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    defs = definitions(url, CLOSE_OFF)
    store(defs, instance)
    outcome = runs.crosscheck(defs, instance, ["AAPL"], FIRST, LAST)
    assert outcome.success, outcome.error
    evaluations = recorded(instance, outcome.run_id)
    assert all(e.passed for e in evaluations.values())
    assert text(evaluations["2005-04-01"], NOT_COMPARED_KEY) == (
        "AAPL (no other source to compare with (name one: crosscheck --against SOURCE))"
    )


def test_a_fallback_with_no_source_left_to_compare_with_is_reported_not_compared(
    pg_server: LocalPostgres, instance: dg.DagsterInstance
) -> None:
    url = create_database(pg_server, "warehouse")
    watch(url, ["AAPL"], FIRST)
    defs = definitions(
        url,
        CLOSE_OFF,
        CANDLE_SOURCE="yahoo",
        CANDLE_YAHOO_REPLAY_DIR=str(YAHOO_REPLAY),
        CANDLE_FALLBACK_SOURCES="csv",
    )
    [outcome] = runs.materialize(defs, instance, FIRST, LAST)
    assert outcome.success, outcome.error
    evaluations = recorded(instance, outcome.run_id)
    assert sorted(evaluations) == SESSIONS
    for day, evaluation in evaluations.items():
        assert evaluation.passed, "nothing compared, nothing mismatched"
        assert evaluation.metadata["compared_ticker_days"].value == 0
        assert text(evaluation, NOT_COMPARED_KEY) == (
            "AAPL (no other source to compare with (name one: crosscheck --against SOURCE))"
        ), day


@pytest.fixture
def cli_env(external_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The command line on an external warehouse and instance, its definitions reading the
    hand-made CSV folder and replaying Polygon."""
    url = external_env["CANDLE_DATABASE_URL"]
    wired = definitions(url, CLOSE_OFF)
    monkeypatch.setattr("candle_pipeline.definitions.defs", lambda: wired)
    return url


def test_the_command_prints_each_mismatch_and_a_summary(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    watch(cli_env, ["AAPL"], FIRST)
    assert main(["materialize", "--start", "2005-04-01", "--end", "2005-04-04"]) == 0
    capsys.readouterr()
    command = ["crosscheck", "--tickers", "aapl", "--start", "2005-04-01", "--end", "2005-04-04"]
    assert main([*command, "--against", "polygon"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"mismatch: {AAPL_MISMATCH}"
    assert lines[1].startswith("run ")
    assert lines[1].endswith(
        "ok: 2 ticker-day(s) compared, 1 more than 0.50% apart (source_mismatch), "
        "0 not compared [2005-04-01 .. 2005-04-04]"
    )
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tickers", "MSFT"], "ticker(s) MSFT are not on the watch list"),
        (["--tickers", "AAPL", "--start", "2005-04-04", "--end", "2005-04-01"], "reversed"),
        (["--tickers", "AAPL", "--start", "April"], "--start"),
        (["--tickers", "not a ticker!"], "not a ticker"),
        (["--tickers", ","], "name the tickers"),
    ],
)
def test_bad_input_is_one_line(
    cli_env: str, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    watch(cli_env, ["AAPL"], FIRST)
    dates = {"--start": "2005-04-01", "--end": "2005-04-04"}
    for option, value in dates.items():
        if option not in arguments:
            arguments = [*arguments, option, value]
    assert main(["crosscheck", *arguments]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("candle-pipeline: error: ")
    assert message in line
