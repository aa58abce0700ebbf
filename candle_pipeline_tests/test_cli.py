"""The command line as a user types it: one clear line for bad input, the watch list, runs of a
range of days, the coverage report on a small real warehouse, and the demo against an external
server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from candle_pipeline import runs
from candle_pipeline.cli import EXIT_FAILED, EXIT_USAGE, main
from candle_pipeline.definitions import defs
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.partitions import today
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.conftest import (
    clear_settings,
    create_database,
    definitions_for,
    table,
    watch,
)
from candle_pipeline_tests.quality.corrupt import copy_ticker, high_low_swapped, read_day, write_day

MATERIALIZE = ["materialize", "--start", "2013-10-04", "--end", "2013-10-04"]


def one_error_line(capsys: pytest.CaptureFixture[str], message: str) -> None:
    """Exactly one line on stderr, saying `message`; nothing on stdout, no traceback."""
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("candle-pipeline: error:"), err
    assert message in err, err


@pytest.fixture
def no_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A database that cannot be reached: what is refused here is refused before any connection."""
    monkeypatch.setenv("CANDLE_DATABASE_URL", "postgresql://nobody@/never?host=/nonexistent")
    monkeypatch.setenv("CANDLE_STATE_DIR", str(tmp_path))
    for exported in ("DAGSTER_HOME", "CANDLE_DAGSTER_DATABASE_URL"):
        monkeypatch.delenv(exported, raising=False)


@pytest.mark.usefixtures("no_database")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*MATERIALIZE, "--tickers", "'; DROP TABLE x;--"], "is not a ticker"),
        (["materialize", "--start", "2013-13-01", "--end", "2013-10-04"], "--start: '2013-13-01'"),
        (["materialize", "--start", "2013-10-08", "--end", "2013-10-04"], "reversed"),
        (["materialize", "--start", "1999-01-01", "--end", "1999-01-04"], "before the first"),
        (["materialize", "--start", "2013-10-04", "--end", "2999-01-04"], "after the last"),
        ([*MATERIALIZE, "--select", "prices"], "unknown asset(s) prices"),
        ([*MATERIALIZE, "--select", ","], "select at least one asset"),
        (["tickers", "add"], "`tickers add` needs at least one ticker"),
        (["tickers", "remove"], "`tickers remove` needs at least one ticker"),
        (["tickers", "add", "SPY", "--history-start", "2013-02-30"], "--history-start: "),
        (["tickers", "add", "SPY", "BRK/B"], "is not a ticker"),
        (["coverage", "--start", "2013-10-32"], "--start: '2013-10-32' is not a date"),
        (["coverage", "--start", "2013-10-08", "--end", "2013-10-01"], "reversed"),
        (["coverage", "--end", "2999-01-01"], "after the last partition"),
        (["coverage", "--ticker", "SPY,x y"], "is not a ticker"),
    ],
)
def test_bad_arguments_get_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    one_error_line(capsys, message)


@pytest.fixture
def cli_env(external_env: dict[str, str]) -> str:
    """The warehouse URL of `external_env`."""
    return external_env["CANDLE_DATABASE_URL"]


def listing(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """`tickers list` as {ticker: {column: cell}} (what was printed before is dropped)."""
    capsys.readouterr()
    assert main(["tickers", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]
    return {row["ticker"]: row for row in rows}


def test_bad_input_that_needs_the_watch_list_gets_one_clear_line(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickers", "add", "SPY", "--history-start", "2013-10-04"]) == 0
    capsys.readouterr()
    for argv, message in [
        (["tickers", "add", "IBM", "--exchange", "MOON"], "exchange 'MOON' is not known"),
        ([*MATERIALIZE, "--tickers", "SPY,NVDA"], "ticker(s) NVDA are not on the watch list"),
        (["coverage", "--ticker", "NVDA"], "ticker(s) NVDA are not on the watch list"),
    ]:
        assert main(argv) == EXIT_USAGE, argv
        one_error_line(capsys, message)
    assert list(listing(capsys)) == ["SPY"], "nothing was added"
    with engine_for(cli_env).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM market.ticker_days")).scalar() == 0


def test_the_watch_list_commands(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tickers", "add", "nvda", "BRK.B", "--exchange", "XNAS"]) == 0
    assert main(["tickers", "add", "SPY", "--history-start", "2013-10-04"]) == 0
    added = capsys.readouterr().out
    assert "watching 2 ticker(s)" in added
    assert "from their history start (2013-10-04 unless given before)" in added
    before = listing(capsys)
    assert {t: (r["exchange"], r["active"], r["removed_on"]) for t, r in before.items()} == {
        "NVDA": ("XNAS", "True", ""),
        "BRK-B": ("XNAS", "True", ""),
        "SPY": ("XNYS", "True", ""),
    }
    assert before["SPY"]["history_start"] == "2013-10-04"
    # Without --history-start: the lookback before today, the same day for both.
    assert before["NVDA"]["history_start"] == before["BRK-B"]["history_start"] != ""

    assert main(["tickers", "remove", "SPY", "nvda", "AAPL"]) == 0
    removed = capsys.readouterr().out.splitlines()
    match = re.fullmatch(
        r"removed 2 ticker\(s\) from (\d{4}-\d\d-\d\d) on: (.*); "
        r"their earlier days and stored rows stay",
        removed[0],
    )
    assert match, removed
    assert sorted(match.group(2).split(", ")) == ["NVDA", "SPY"]
    assert removed[1:] == ["not being watched, nothing changed: AAPL"]
    after = listing(capsys)
    assert after["SPY"]["removed_on"] == after["NVDA"]["removed_on"] == match.group(1)
    assert (after["SPY"]["active"], after["SPY"]["history_start"]) == ("False", "2013-10-04")
    assert after["BRK-B"] == before["BRK-B"]

    assert main(["tickers", "add", "SPY", "--history-start", "2010-01-04"]) == 0
    again = listing(capsys)["SPY"]
    assert (again["active"], again["removed_on"], again["history_start"]) == (
        "True",
        "",
        "2010-01-04",
    )


def test_tickers_added_with_intraday_stay_marked(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickers", "add", "SPY", "--intraday"]) == 0
    assert main(["tickers", "add", "IBM"]) == 0
    assert main(["tickers", "add", "SPY"]) == 0, "a re-add without the flag keeps the mark"
    listed = listing(capsys)
    assert {ticker: row["intraday"] for ticker, row in listed.items()} == {
        "SPY": "True",
        "IBM": "False",
    }


def test_intraday_tickers_the_rate_limit_cannot_refresh_are_refused(
    cli_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 8 requests a minute and a refresh every 5 minutes (40 requests), 18 tickers on one
    exchange fit (2 each and 2 for the run: 38) and a 20th does not (42)."""
    monkeypatch.setenv("CANDLE_PROVIDER_REQUESTS_PER_MINUTE", "8")
    monkeypatch.setenv("CANDLE_INTRADAY_MINUTES", "5")
    clear_settings()
    fitting = [f"T{n:02d}" for n in range(18)]
    assert main(["tickers", "add", *fitting, "--intraday"]) == 0
    capsys.readouterr()
    assert main(["tickers", "add", "SPY", "IBM", "--intraday"]) == EXIT_USAGE
    one_error_line(
        capsys,
        "not marked for intraday: 20 intraday ticker(s) on 1 exchange(s) need 42 requests "
        "every 5 min, but the rate limit of 8 requests/min allows 40",
    )
    assert sorted(listing(capsys)) == fitting, "nothing of the refused add is kept"


def test_materialize_runs_the_days_with_the_tickers_and_assets_asked_for(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    watch(cli_env, ["SPY", "IBM"], date(2013, 10, 4))
    assert main(["materialize", "--start", "2013-10-04", "--end", "2013-10-08"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"run [0-9a-f]{8} ok: market_timings, raw_quotes, validated_quotes, candles "
        r"\[2013-10-04 \.\. 2013-10-08\]",
        line,
    ), line
    first = table(cli_env, "ticker_days")
    assert sorted(first["status"].value_counts().items()) == [("closed", 4), ("complete", 6)]

    refetch = ["--start", "2013-10-07", "--end", "2013-10-07", "--tickers", "spy", "--refetch"]
    assert main(["materialize", *refetch]) == 0
    states = table(cli_env, "ticker_days").set_index(["ticker", "trade_date"])["attempts"]
    assert states[("SPY", date(2013, 10, 7))] == 2
    assert (states.drop(("SPY", date(2013, 10, 7))) <= 1).all(), "nothing else was fetched again"

    timings = ["--start", "2013-10-09", "--end", "2013-10-10", "--select", "market_timings"]
    assert main(["materialize", *timings]) == 0
    assert "ok: market_timings [2013-10-09 .. 2013-10-10]" in capsys.readouterr().out
    assert set(table(cli_env, "market_timings")["session_date"]) == {
        date(2013, 10, day) for day in range(4, 11)
    }
    assert len(table(cli_env, "ticker_days")) == 10, "market data of the 9th and 10th not run"


@pytest.fixture
def small_warehouse(cli_env: str, instance: dg.DagsterInstance, tmp_path: Path) -> str:
    """Four tickers from 2013-10-04, the days 2013-10-04..08 materialised: SPY's Tuesday is
    corrupted (blocked), AIG's files are unreadable (failed), NVDA has no file (no data), IBM
    was removed from Tuesday on. The days after the 8th are not fetched."""
    csv_dir = tmp_path / "csv"
    for ticker in ("SPY", "IBM"):
        copy_ticker(csv_dir, ticker)
    write_day(csv_dir, "SPY", "2013-10-08", high_low_swapped(read_day("SPY", "2013-10-08")))
    (csv_dir / "lean-minute" / "AIG").mkdir(parents=True)
    (csv_dir / "lean-minute" / "AIG" / "2013-10-07.csv").write_text("ts,open\nnot,a bar\n")
    watch(cli_env, ["SPY", "AIG", "NVDA"], date(2013, 10, 4))
    watch(cli_env, ["IBM"], date(2013, 10, 4), removed_on=date(2013, 10, 8))
    [outcome] = runs.materialize(
        definitions_for(cli_env, csv_dir), instance, date(2013, 10, 4), date(2013, 10, 8)
    )
    assert outcome.success, outcome.error
    return cli_env


def test_coverage_counts_each_tickers_sessions_by_status(
    small_warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["coverage", "--start", "2013-10-01", "--end", "2013-10-11"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "open sessions of watched tickers, 2013-10-01 .. 2013-10-11",
        "| ticker   |   sessions |   complete |   blocked |   no_data |   failed |"
        "   retry_later |   not_fetched |",
        "|----------|------------|------------|-----------|-----------|----------|"
        "---------------|---------------|",
        "| AIG      |          6 |          0 |         0 |         0 |        3 |"
        "             0 |             3 |",
        "| IBM      |          2 |          2 |         0 |         0 |        0 |"
        "             0 |             0 |",
        "| NVDA     |          6 |          0 |         0 |         3 |        0 |"
        "             0 |             3 |",
        "| SPY      |          6 |          2 |         1 |         0 |        0 |"
        "             0 |             3 |",
    ]
    assert main(["coverage", "--ticker", "IBM,NVDA", "--start", "2013-10-07"]) == 0
    rows = capsys.readouterr().out.splitlines()[3:]
    assert [row.split("|")[1].strip() for row in rows] == ["IBM", "NVDA"]


def test_coverage_of_one_ticker_is_a_line_per_month(
    small_warehouse: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["coverage", "--ticker", "spy", "--start", "2013-09-30", "--end", "2013-11-03"]) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "SPY, 2013-09-30 .. 2013-11-03: 21 session(s): 2 complete, 1 blocked, 18 not_fetched",
        "# complete, ~ in progress (provisional), B blocked by quality, n no data, F failed, "
        "R retry later, . not fetched, C closed by a calendar correction, - no session or not "
        "watched",
        "2013-09  -",
        "2013-10  ---#--#B...--.....--.....--....",
        "2013-11  .--",
        "1 x quality score 0.0000 < threshold 0.8",
    ]
    assert (
        main(["coverage", "--ticker", "AIG", "--start", "2013-10-04", "--end", "2013-10-08"]) == 0
    )
    aig = capsys.readouterr().out.splitlines()
    assert aig[2] == "2013-10  F--FF"
    assert len(aig) == 4 and aig[3].startswith("3 x "), "the cause of the failed days"


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "candle_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {
            name: conn.execute(sa.text(f"SELECT count(*) FROM market.{name}")).scalar_one()
            for name in ("market_timings", "raw_quotes", "validated_quotes", "candles")
        }


def test_demo_fills_the_configured_database(pg_server: LocalPostgres, tmp_path: Path) -> None:
    url = create_database(pg_server, "external")
    env = {**os.environ, "CANDLE_DATABASE_URL": url, "CANDLE_STATE_DIR": str(tmp_path / "state")}
    for name in ("DAGSTER_HOME", "CANDLE_DAGSTER_DATABASE_URL", "CANDLE_CSV_DIR"):
        env.pop(name, None)
    first = run_cli(["demo"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "pool market_api: at most 1 at once (was unlimited)" in first.stdout
    assert len(re.findall(r"^run [0-9a-f]{8} ok: ", first.stdout, re.MULTILINE)) == 3
    days = {
        cells[0]: cells[1:]
        for line in first.stdout.splitlines()
        if (cells := [cell.strip() for cell in line.strip("|").split("|")])[0].startswith("20")
    }
    assert len(days) == 19, "every calendar day of the sample"
    assert days["2013-10-05"] == ["6", "0", ""], "a Saturday: 6 closed, no score"
    assert days["2013-10-07"][:2] == ["0", "6"], "a Monday: 6 complete"
    assert days["2015-12-28"][2] == "0.979", "GOOG's quiet minutes"
    assert "| raw_quotes        | 16,865 |" in first.stdout
    # AAPL's split, raw and adjusted side by side: 645.57 traded before, 645.57 / 28 adjusted.
    split_week = first.stdout.split("AAPL across its 7:1 split")[1]
    assert re.search(r"^\| 2014-06-06 +\| +645\.57 +\| +23\.056", split_week, re.MULTILINE)
    assert not (tmp_path / "state" / "postgres").exists(), "no embedded server was started"
    assert counts(url) == {
        "market_timings": 19,
        "raw_quotes": 16_865,
        "validated_quotes": 16_865,
        "candles": 3_794,
    }
    # The sample's tickers are kept for its days only: counted until the day after it.
    watched = table(url, "watchlist")
    assert watched["ticker"].tolist() == ["AAPL", "AIG", "BAC", "GOOG", "IBM", "SPY"]
    assert not watched["active"].any()
    assert set(watched["history_start"]) == {date(2013, 10, 4)}
    assert set(watched["removed_on"]) == {date(2015, 12, 29)}


def test_a_failed_run_says_why_and_exits_1(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    watch(cli_env, ["SPY"], date(2013, 10, 4))
    assert main([*MATERIALIZE, "--select", "raw_quotes"]) == EXIT_FAILED
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"run [0-9a-f]{8} FAILED: raw_quotes \[2013-10-04 \.\. 2013-10-04\]", out[0]
    )
    assert out[1] == (
        "  market_data: raw_quotes is materialised with what is built from it in the same step: "
        "select validated_quotes, candles too"
    )
    short_id = out[0].split()[1]
    assert re.fullmatch(
        rf"  its events and logs: http://localhost:3000/runs/{short_id}[0-9a-f-]{{28}} "
        r"\(`candle-pipeline ui`\)",
        out[2],
    ), out[2]
    assert len(out) == 3


UNREACHABLE = "postgresql://nobody@db.invalid:5999/never"


def cli_process(
    argv: list[str], cwd: Path, **environment: str | None
) -> subprocess.CompletedProcess:
    """`candle-pipeline ARGV` in a new process started in `cwd`, with `environment` (None:
    unset) on top of a database that cannot be reached."""
    chosen = {
        "CANDLE_DATABASE_URL": UNREACHABLE,
        "CANDLE_STATE_DIR": str(cwd / "state"),
        **environment,
    }
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("CANDLE_")},
        **{name: value for name, value in chosen.items() if value is not None},
    }
    command = [sys.executable, "-m", "candle_pipeline.cli", *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CANDLE_DATABASE_URL", "notaurl", "CANDLE_DATABASE_URL is not a valid URL"),
        ("CANDLE_SOURCE", "foo", "CANDLE_SOURCE='foo' is not a known market-data source"),
        ("CANDLE_QUALITY_THRESHOLD", "abc", "CANDLE_QUALITY_THRESHOLD='abc' is not a number"),
        ("CANDLE_CATCHUP_CRON", "daily", "CANDLE_CATCHUP_CRON='daily' is not a cron expression"),
        ("CANDLE_WAREHOUSE_SCHEMA", "Bad;x", "CANDLE_WAREHOUSE_SCHEMA='Bad;x' is not a valid SQL"),
    ],
)
def test_a_bad_setting_is_one_line_whatever_the_command(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    for argv in (["tickers", "list"], MATERIALIZE, ["coverage"], ["db", "url"]):
        done = cli_process(argv, tmp_path, **{variable: value})
        assert (done.returncode, done.stdout) == (EXIT_USAGE, ""), argv
        assert done.stderr == f"candle-pipeline: error: {message}" + done.stderr.split(message)[1]
        assert done.stderr.count("\n") == 1, done.stderr


def test_settings_come_from_dot_env_in_the_working_folder_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        "# the one settings file of every process\n"
        "CANDLE_DATABASE_URL=postgresql://analyst:s3cret@db.example:5433/market\n"
        "CANDLE_SOURCE=foo\n"
    )
    refused = cli_process(["db", "url"], tmp_path)
    assert refused.stderr.startswith("candle-pipeline: error: CANDLE_SOURCE='foo'"), refused
    read = cli_process(["db", "url"], tmp_path, CANDLE_SOURCE="csv")
    assert (read.returncode, read.stderr) == (0, "")
    assert read.stdout == f"{UNREACHABLE}\n", "the environment wins"
    without = {"CANDLE_DATABASE_URL": None}
    from_file = cli_process(["db", "url"], tmp_path, CANDLE_SOURCE="csv", **without)
    assert from_file.stdout == "postgresql://analyst:***@db.example:5433/market\n", from_file
    usable = cli_process(["db", "url", "--show-password"], tmp_path, CANDLE_SOURCE="csv", **without)
    assert usable.stdout == "postgresql://analyst:s3cret@db.example:5433/market\n", usable


def test_a_day_whose_session_is_in_progress_is_refused_naming_when_it_can_be_run(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 24/7 market's session of today runs until midnight UTC, whatever the clock says."""
    watch(cli_env, ["BTC-USD"], date(2013, 10, 4), exchange="24/7")
    current_day = today()
    day = current_day.isoformat()
    assert main(["materialize", "--start", day, "--end", day]) == EXIT_USAGE
    next_midnight = f"{current_day + timedelta(days=1)} 00:00"
    one_error_line(
        capsys,
        f"the session of {day} is still in progress (24/7 closes {next_midnight} UTC): "
        f"materialise {day} after {next_midnight} UTC, or end the range on "
        f"{current_day - timedelta(days=1)}",
    )
    assert table(cli_env, "ticker_days").empty, "nothing was fetched"
    assert main(["materialize", "--start", day, "--end", day, "--select", "market_timings"]) == 0


def test_removing_a_ticker_cancels_its_queued_backfill_and_nothing_else(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tickers", "add", "SPY", "AIG", "--history-start", "2013-10-04"]) == 0
    job = defs().resolve_job_def(runs.MARKET_DATA_JOB)
    waiting = dg.DagsterRunStatus.NOT_STARTED
    with dg.DagsterInstance.get() as instance:
        spy_only, both, everyone = (
            instance.create_run_for_job(job, run_config=runs.run_config(named), status=waiting)
            for named in (["SPY"], ["SPY", "AIG"], [])
        )
    capsys.readouterr()
    assert main(["tickers", "remove", "SPY"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "cancelled 1 queued run(s) that fetched only them"
    with dg.DagsterInstance.get() as instance:
        status = {run.run_id: run.status for run in instance.get_runs()}
    assert status == {
        spy_only.run_id: dg.DagsterRunStatus.CANCELED,
        both.run_id: waiting,
        everyone.run_id: waiting,
    }, "runs that fetch other tickers too stay queued"


def test_tickers_add_names_their_provider(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tickers", "add", "NVDA", "--provider", "polygon"]) == 0
    assert main(["tickers", "add", "btc/usdt", "SPY"]) == 0
    assert main(["tickers", "add", "NVDA"]) == 0, "a re-add naming none keeps it"
    watched = listing(capsys)
    assert {t: (r["provider"], r["exchange"]) for t, r in watched.items()} == {
        "NVDA": ("polygon", "XNYS"),
        "BTC/USDT": ("", "24/7"),  # the rule: a crypto pair goes to the crypto provider
        "SPY": ("", "XNYS"),
    }
    with pytest.raises(SystemExit):
        main(["tickers", "add", "IBM", "--provider", "bloomberg"])
    assert "invalid choice: 'bloomberg'" in capsys.readouterr().err
