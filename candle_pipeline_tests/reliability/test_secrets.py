"""Secrets never leak: not into the repository, the command line's output, or a run's logs."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
from sqlalchemy.engine import make_url

from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import PROJECT_DIR, mask_url
from candle_pipeline_tests.conftest import command_line_env, create_database

# Credentials written into code or configuration, e.g. postgresql://user:pw@host or password=...
CREDENTIAL_PATTERNS = (
    re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^/\s:@'\"]+:[^@\s'\"{}$]+@"),
    re.compile(r"password\s*[=:]\s*['\"][^'\"{}$]+['\"]", re.IGNORECASE),
)


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def tracked_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    return [PROJECT_DIR / name for name in listing.stdout.splitlines()]


def test_no_credentials_in_code_or_configuration() -> None:
    """The package, configuration and docs hold no credentials (tests hold made-up ones)."""
    offenders = []
    for path in tracked_files():
        if "candle_pipeline_tests" in path.parts:
            continue
        if path.suffix not in {".py", ".yaml", ".yml", ".toml", ".cfg", ".md", ".txt", ""}:
            continue
        text = path.read_text(errors="ignore")
        for pattern in CREDENTIAL_PATTERNS:
            offenders.extend(f"{path}: {match}" for match in pattern.findall(text))
    assert offenders == []


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql://candle:hunter2@db.example:5432/candle")
    assert "hunter2" not in masked
    assert masked == "postgresql://candle:***@db.example:5432/candle"


def test_a_run_never_shows_the_database_password(pg_server: LocalPostgres, tmp_path: Path) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    url = with_password(create_database(pg_server, "secret"), password)
    env = {**os.environ, **command_line_env(tmp_path, url), "CANDLE_LOG_LEVEL": "DEBUG"}
    dagster_home = Path(env["DAGSTER_HOME"])
    commands = [
        ["tickers", "add", "SPY", "--history-start", "2013-10-04"],
        ["materialize", "--tickers", "SPY", "--start", "2013-10-04", "--end", "2013-10-07"],
        ["db", "url"],
        ["db", "up"],
    ]
    outputs = []
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "candle_pipeline.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "***" in outputs[2], "db url shows the masked URL"
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(DISTINCT trade_date) FROM market.raw_quotes").fetchone()
    assert stored == (2,), "the run stored SPY's two sessions"
    for output in outputs:
        assert password not in output

    os.environ["CANDLE_DAGSTER_DATABASE_URL"] = url
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            records = instance.get_run_records()
            assert records, "the runs were recorded"
            for record in records:
                logs = instance.all_logs(record.dagster_run.run_id)
                text = json.dumps(
                    [entry.to_json() if hasattr(entry, "to_json") else str(entry) for entry in logs]
                )
                assert password not in text
                assert password not in json.dumps(record.dagster_run.tags)
    finally:
        del os.environ["CANDLE_DAGSTER_DATABASE_URL"]
    for path in dagster_home.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(errors="ignore"), path


def test_a_failed_connection_names_the_server_not_the_password(tmp_path: Path) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    env = {
        **os.environ,
        "CANDLE_DATABASE_URL": f"postgresql://candle:{password}@/candle?host={tmp_path}/nowhere",
        "CANDLE_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "candle_pipeline.cli", "tickers", "add", "SPY"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert password not in result.stdout + result.stderr
    assert result.stderr.startswith("candle-pipeline: error: cannot reach the database:")
    assert "Traceback" not in result.stderr
