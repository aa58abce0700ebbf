"""The command line: clear errors for bad arguments, and the demo against an external server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from candle_pipeline.cli import EXIT_USAGE, main
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.resources.warehouse import engine_for
from candle_pipeline_tests.conftest import create_database


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [
                "materialize",
                "--tickers",
                "'; DROP TABLE x;--",
                "--start",
                "2013-10-04",
                "--end",
                "2013-10-04",
            ],
            "is not a ticker",
        ),
        (
            ["materialize", "--tickers", "SPY", "--start", "2013-13-01", "--end", "2013-10-04"],
            "--start: '2013-13-01' is not a date",
        ),
        (
            ["materialize", "--tickers", "SPY", "--start", "2013-10-08", "--end", "2013-10-04"],
            "reversed",
        ),
        (
            ["materialize", "--tickers", "SPY", "--start", "1999-01-01", "--end", "1999-01-04"],
            "before the first partition",
        ),
        (
            ["materialize", "--tickers", "SPY", "--start", "2013-10-04", "--end", "2999-01-04"],
            "after the last partition",
        ),
        (
            [
                "materialize",
                "--tickers",
                "SPY",
                "--start",
                "2013-10-04",
                "--end",
                "2013-10-04",
                "--select",
                "prices",
            ],
            "unknown asset",
        ),
        (["tickers", "add"], "needs at least one ticker"),
    ],
)
def test_bad_arguments_get_one_clear_line(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CANDLE_DATABASE_URL", "postgresql://nobody@/never?host=/nonexistent")
    monkeypatch.setenv("CANDLE_STATE_DIR", str(tmp_path))
    for exported in ("DAGSTER_HOME", "CANDLE_DAGSTER_DATABASE_URL"):
        monkeypatch.delenv(exported, raising=False)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("candle-pipeline: error:")
    assert "Traceback" not in err


def counts(url: str) -> dict[str, int]:
    with engine_for(url).connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM market.{table}")).scalar_one()
            for table in ("market_timings", "raw_quotes", "validated_quotes", "candles")
        }


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "candle_pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_demo_fills_the_configured_database_and_is_repeatable(
    pg_server: LocalPostgres, tmp_path: Path
) -> None:
    url = create_database(pg_server, "external")
    env = {
        **os.environ,
        "CANDLE_DATABASE_URL": url,
        "CANDLE_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("DAGSTER_HOME", None)
    first = run_cli(["demo"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Rows and quality score per partition" in first.stdout
    assert (
        "| SPY      | 2013-10-07   |          828 |                828 |       125 | 1.000   |"
        in first.stdout
    )
    assert "| SPY      | 2013-10-07   |          828 |" in first.stdout
    assert not (tmp_path / "state" / "postgres").exists(), "no embedded server was started"
    after_first = counts(url)
    assert after_first["raw_quotes"] == 16_823
    second = run_cli(["demo"], env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert counts(url) == after_first
    assert "pool market_api: at most 1 at once (was unlimited)" in first.stdout
    assert "pool market_api: at most 1 at once (unchanged)" in second.stdout

    listed = run_cli(["tickers", "list"], env)
    rows = [line.split("|")[1:4] for line in listed.stdout.splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        [ticker, "XNYS", "False"] for ticker in ("AAPL", "AIG", "BAC", "GOOG", "IBM", "SPY")
    ]

    added = run_cli(["tickers", "add", "nvda", "BRK.B", "--exchange", "XNAS"], env)
    assert added.returncode == 0, added.stderr
    assert "watching 2 ticker(s)" in added.stdout
    removed = run_cli(["tickers", "remove", "NVDA"], env)
    assert "deactivated 1 ticker(s): NVDA" in removed.stdout
    assert "deleted 0 partition(s)" in removed.stdout
    removed = run_cli(["tickers", "remove", "SPY", "--delete-partitions"], env)
    assert "deactivated 0 ticker(s)" in removed.stdout, "the sample is kept for its history only"
    assert "deleted 1 partition(s)" in removed.stdout
    listed = run_cli(["tickers", "list"], env).stdout
    assert "| BRK-B    | XNAS       | True     | False       |" in listed
    assert "| SPY      | XNYS       | False    | False       |" in listed
    assert counts(url) == after_first, "removing a ticker keeps its data"
