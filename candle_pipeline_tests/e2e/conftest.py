"""A real Dagster deployment for end-to-end tests: dagster-webserver and dagster-daemon as
subprocesses on the project's dagster.yaml, with a fresh Postgres instance and warehouse."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Page, sync_playwright

from candle_pipeline.local_env import instance_environment
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import (
    ENV_BACKFILL_DAYS_PER_RUN,
    ENV_DATABASE_URL,
    ENV_STATE_DIR,
    MAX_BACKFILL_DAYS_PER_RUN,
    PROJECT_DIR,
)
from candle_pipeline_tests.conftest import create_database

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20
POLL_SECONDS = 1.0
T = TypeVar("T")
REPOSITORY = {"repositoryName": "__repository__", "repositoryLocationName": "candle_pipeline"}


class GraphQLError(AssertionError):
    """The webserver answered with errors."""


@dataclass
class Deployment:
    url: str
    warehouse_url: str
    env: Mapping[str, str]
    logs: Path

    def graphql(self, query: str, variables: Mapping[str, object] | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"], indent=2))
        return answer["data"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "candle-pipeline"), *args],
            env=dict(self.env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.logs.glob("*.log"))
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process in its own session, so it and its children (code server, runs) stop together."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["env", "--default-signal=INT,TERM", *command],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=PROJECT_DIR,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, then SIGKILL to whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    deployment: Deployment,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> T:
    """Poll `probe` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, GraphQLError) as error:
            last_error = error
        time.sleep(POLL_SECONDS)
    pytest.fail(f"timed out waiting for {what} ({last_error})\n{deployment.log_tail()}")


LOCATION_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } }
} } } }
"""

DAEMONS_QUERY = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""


def location_loaded(deployment: Deployment) -> bool:
    data = deployment.graphql(LOCATION_QUERY)
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"]
        if error and error["__typename"] == "PythonError":
            pytest.fail(f"the code location failed to load: {error['message']}")
    return any(entry["loadStatus"] == "LOADED" for entry in entries)


def daemons_healthy(deployment: Deployment) -> bool:
    statuses = deployment.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]
    required = [s for s in statuses["allDaemonStatuses"] if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)


@pytest.fixture(scope="module")
def deployment(pg_server: LocalPostgres) -> Iterator[Deployment]:
    """The webserver and the daemon, loaded and healthy, on the project's own dagster.yaml."""
    root = Path(tempfile.mkdtemp(prefix="candle-e2e-"))
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_DIR / "dagster.yaml")
    logs = root / "logs"
    logs.mkdir()
    warehouse_url = create_database(pg_server, "warehouse")
    dagster_url = create_database(pg_server, "dagster")
    env = {
        **os.environ,
        ENV_DATABASE_URL: warehouse_url,
        ENV_STATE_DIR: str(root / "state"),
        # A new ticker's history since 2013 in one run instead of a run per year: the test waits
        # for it, and each run pays for a run worker's start.
        ENV_BACKFILL_DAYS_PER_RUN: str(MAX_BACKFILL_DAYS_PER_RUN),
        **instance_environment(dagster_url, home),
    }
    port = free_port()
    deployment = Deployment(f"http://127.0.0.1:{port}", warehouse_url, env, logs)
    applied = deployment.cli("pools", "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    workspace = str(PROJECT_DIR / "workspace.yaml")
    webserver = start(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
        env,
        logs / "webserver.log",
    )
    daemon = start([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, logs / "daemon.log")
    try:
        wait_for("the code location to load", lambda: location_loaded(deployment), deployment)
        wait_for("the daemon's heartbeats", lambda: daemons_healthy(deployment), deployment)
        yield deployment
    finally:
        stop(webserver)
        stop(daemon)
        shutil.rmtree(root, ignore_errors=True)


CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches for the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    """A page of Debian's Chromium driven by Playwright, with a new, empty profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")

    profile = Path(tempfile.mkdtemp(prefix="candle-chromium-"))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            yield context.new_page()
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)
