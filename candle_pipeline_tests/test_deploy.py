"""What can be checked of the deployment files without a container engine or a cluster."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin

from candle_pipeline.local_env import instance_environment
from candle_pipeline.local_postgres import LocalPostgres
from candle_pipeline.settings import PROJECT_DIR, OperationsSettings
from candle_pipeline_tests.conftest import create_database
from candle_pipeline_tests.e2e.conftest import free_port, start, stop

DEPLOY = PROJECT_DIR / "deploy"
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_SECONDS = 120


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def env_variables(node: object) -> set[str]:
    """Every `env:` variable a Dagster YAML document reads."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} else set()
        return found.union(*(env_variables(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_variables(value) for value in node))
    return set()


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON (exec) form of the Dockerfile's last `name` instruction."""
    text = (PROJECT_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.MULTILINE)
    assert found, f"no {name} in the Dockerfile"
    return json.loads(found[-1])


DAGSTER_YAML = load(PROJECT_DIR / "dagster.yaml")
COMPOSE = load(DEPLOY / "compose.yaml")
HELM = load(DEPLOY / "helm" / "values.yaml")


def test_dagster_yaml_reads_no_variable_without_a_default() -> None:
    """Dagster's `env:` fails on an unset variable; the instance classes read them instead."""
    assert env_variables(DAGSTER_YAML) == set()
    for name in ("code-location", "setup", "webserver", "daemon"):
        environment = COMPOSE["services"][name]["environment"]
        assert {"CANDLE_DAGSTER_DATABASE_URL", "DAGSTER_HOME"} <= set(environment), name
        assert environment["DAGSTER_HOME"] == "/opt/dagster/home"


def test_compose_wires_the_processes_together() -> None:
    services = COMPOSE["services"]
    workspace = load(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]
    assert workspace == {"host": "code-location", "port": 4000, "location_name": "candle_pipeline"}
    assert dockerfile_instruction("CMD")[-2:] == ["-m", "candle_pipeline.definitions"]
    assert "4000" in dockerfile_instruction("CMD")
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["setup"]["command"] == ["candle-pipeline", "pools", "apply"]
    assert services["webserver"]["depends_on"]["setup"]["condition"] == (
        "service_completed_successfully"
    )
    # No password is written down: it comes from deploy/.env through the environment.
    text = (DEPLOY / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert (DEPLOY / ".gitignore").read_text().split() == [".env"]


def test_helm_values_mirror_the_instance_policy() -> None:
    coordinator = DAGSTER_YAML["run_coordinator"]["config"]
    daemon = HELM["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == OperationsSettings.from_env({}).max_concurrent_runs
    assert queued["tagConcurrencyLimits"] == coordinator["tag_concurrency_limits"]
    assert queued["blockOpConcurrencyLimitedRuns"] == {
        "enabled": coordinator["block_op_concurrency_limited_runs"]["enabled"],
        "opConcurrencySlotBuffer": coordinator["block_op_concurrency_limited_runs"][
            "op_concurrency_slot_buffer"
        ],
    }
    monitoring = DAGSTER_YAML["run_monitoring"]
    assert daemon["runMonitoring"]["enabled"] is True
    assert (
        daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"]
        == (monitoring["free_slots_after_run_end_seconds"])
    )
    retries = DAGSTER_YAML["run_retries"]
    assert daemon["runRetries"] == {
        "enabled": retries["enabled"],
        "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"],
    }
    deployment = HELM["dagster-user-deployments"]["deployments"][0]
    assert deployment["codeServerArgs"] == ["--module-name", "candle_pipeline.definitions"]
    assert deployment["envSecrets"] == [{"name": "candle-pipeline-secrets"}]
    assert HELM["runLauncher"]["type"] == "K8sRunLauncher"
    assert HELM["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == deployment["envSecrets"]
    assert HELM["generatePostgresqlPasswordSecret"] is False


@pytest.fixture(scope="module")
def code_server(pg_server: LocalPostgres) -> Iterator[int]:
    """The image's command, as the Dockerfile states it, on a free local port."""
    port = free_port()
    command = [
        {"0.0.0.0": "127.0.0.1", "4000": str(port)}.get(word, word)
        for word in dockerfile_instruction("CMD")
    ]
    command[0] = str(BIN / command[0])
    root = Path(tempfile.mkdtemp(prefix="candle-code-server-"))
    (root / "dagster.yaml").symlink_to(PROJECT_DIR / "dagster.yaml")
    env = {
        **os.environ,
        **instance_environment(create_database(pg_server, "dagster"), root),
    }
    process = start(command, env, root / "code-server.log")
    health = [
        str(BIN / word) if word == "dagster" else word
        for word in dockerfile_instruction("HEALTHCHECK")
    ]
    health = [{"4000": str(port)}.get(word, word) for word in health]
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while subprocess.run(health, capture_output=True, check=False, env=env).returncode != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail((root / "code-server.log").read_text())
            time.sleep(1)
        yield port
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.integration
def test_the_image_command_serves_the_code_location(code_server: int) -> None:
    origin = GrpcServerCodeLocationOrigin(
        host="127.0.0.1", port=code_server, location_name="candle_pipeline"
    )
    with dg.instance_for_test() as instance, origin.create_location(instance) as location:
        repository = location.get_repository("__repository__")
        nodes = {node.key.to_user_string(): node for node in repository.asset_graph.asset_nodes}
        partitions = {name: node.partitions_def for name, node in nodes.items()}
        schedules = sorted(schedule.name for schedule in repository.get_schedules())
        sensors = sorted(sensor.name for sensor in repository.get_sensors())
        jobs = {job.name for job in repository.get_all_jobs()}
    assert sorted(nodes) == ["candles", "market_timings", "raw_quotes", "validated_quotes"]
    # One day partitions definition for every asset, from CANDLE_PARTITION_START's default.
    assert len(set(partitions.values())) == 1
    [days] = set(partitions.values())
    assert isinstance(days, dg.TimeWindowPartitionsDefinition)
    assert (days.cron_schedule, days.fmt, days.end_offset) == ("0 0 * * *", "%Y-%m-%d", 1)
    assert days.get_first_partition_key() == "2000-01-01"
    assert schedules == [
        "candles_freshness_schedule",
        "catchup_weekly",
        "intraday_refresh",
        "xnys_after_close",
    ]
    assert sensors == [
        "calendar_overrides_sensor",
        "new_tickers_sensor",
        "quality_alerts_sensor",
        "retry_sensor",
        "settings_sensor",
    ]
    assert "market_data_job" in jobs
