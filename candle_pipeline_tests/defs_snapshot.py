"""A readable snapshot of what ships: every asset, check, job, schedule, sensor and resource of
`candle_pipeline.definitions.defs`, read through Dagster's public API on the loaded object.

The definitions read settings from the environment, so the snapshot is taken in a child process
whose environment is pinned (`PINNED_ENV`, every other CANDLE_*/DAGSTER_* variable removed) and
whose working folder is a fresh temporary one: the same text on any machine, any day.

    python -m candle_pipeline_tests.defs_snapshot --write   # `make snapshot`, after a change
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from datetime import date, time
from enum import Enum
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

SNAPSHOT_FILE = Path(__file__).parent / "snapshots" / "defs.json"
CHECKOUT = Path(__file__).resolve().parents[1]
CHECKOUT_MARK = "<checkout>"
ENV_PREFIXES = ("CANDLE_", "DAGSTER_")
# Every setting the definitions read while loading, at a fixed value; the secrets are set so that
# the snapshot shows how each is wired (by variable name), and a test proves their values never
# appear in it.
PINNED_ENV = {
    "CANDLE_PARTITION_START": "2000-01-01",
    "CANDLE_SOURCE": "csv",
    "CANDLE_DEFAULT_EXCHANGE": "XNYS",
    "CANDLE_POLYGON_API_KEY": "pinned-polygon-key-not-a-secret",
    "CANDLE_ALERT_WEBHOOK_URL": "json://pinned-webhook.invalid/not-a-secret",
}
SECRET_VALUES = (PINNED_ENV["CANDLE_POLYGON_API_KEY"], PINNED_ENV["CANDLE_ALERT_WEBHOOK_URL"])
REQUIRED = "<required>"
INDENT = 2
# Kinds are listed on their own; Dagster also stores each as a tag.
KIND_TAG_PREFIX = "dagster/kind/"
LINE_LENGTH = 100


def _plain(value: object) -> object:
    """A JSON value for a field's default or configured value: environment variables by name,
    paths of this checkout relative to it."""
    # `dg.EnvVar` and `dg.EnvVar.int(...)` (an int, not an EnvVar) both name their variable.
    env_var_name = getattr(value, "env_var_name", None)
    if isinstance(env_var_name, str):
        return {"env": env_var_name}
    if isinstance(value, BaseModel):
        # A nested `dg.Config` of a resource: its fields by name.
        return _plain({name: getattr(value, name) for name in type(value).model_fields})
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if value is None or isinstance(value, str | Path | bool | int | float | date | time | Enum):
        return _scalar(value)
    if isinstance(value, Iterable):
        return [_plain(item) for item in value]
    return repr(value)


def _scalar(value: object) -> object:
    if isinstance(value, str | Path):
        return str(value).replace(str(CHECKOUT), CHECKOUT_MARK)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    return value


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> object:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return {
            "type": type(partitions_def).__name__,
            "start": partitions_def.start.isoformat(),
            "cron_schedule": partitions_def.cron_schedule,
            "timezone": partitions_def.timezone,
            "fmt": partitions_def.fmt,
            "end_offset": partitions_def.end_offset,
        }
    return str(partitions_def)


def _retry_policy(policy: dg.RetryPolicy | None) -> object:
    if policy is None:
        return None
    return {
        "max_retries": policy.max_retries,
        "delay": policy.delay,
        "backoff": policy.backoff.value if policy.backoff else None,
        "jitter": policy.jitter.value if policy.jitter else None,
    }


def _backfill_policy(policy: dg.BackfillPolicy | None) -> object:
    if policy is None:
        return None
    return {
        "policy_type": policy.policy_type.value,
        "max_partitions_per_run": policy.max_partitions_per_run,
    }


def _automation(condition: dg.AutomationCondition | None) -> object:
    return None if condition is None else (condition.get_label() or type(condition).__name__)


def _check_key(key: dg.AssetCheckKey) -> str:
    return f"{key.asset_key.to_user_string()}/{key.name}"


def _assets(defs: dg.Definitions) -> dict[str, object]:
    assets: dict[str, object] = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda spec: spec.key.to_user_string()):
        assets_def = defs.resolve_assets_def(spec.key)
        op = assets_def.op
        output = assets_def.get_output_name_for_asset_key(spec.key)
        assets[spec.key.to_user_string()] = {
            "group": spec.group_name,
            "deps": [
                {
                    "asset": dep.asset_key.to_user_string(),
                    "partition_mapping": _plain(dep.partition_mapping),
                }
                for dep in sorted(spec.deps, key=lambda dep: dep.asset_key.to_user_string())
            ],
            "partitions": _partitions(spec.partitions_def),
            "backfill_policy": _backfill_policy(assets_def.backfill_policy),
            "automation_condition": _automation(spec.automation_condition),
            "kinds": sorted(spec.kinds),
            "tags": {
                name: value
                for name, value in sorted(spec.tags.items())
                if not name.startswith(KIND_TAG_PREFIX)
            },
            "owners": sorted(spec.owners),
            "code_version": spec.code_version,
            "skippable": spec.skippable,
            "computed_by": {
                "op": op.name,
                "pool": op.pool,
                "retry_policy": _retry_policy(op.retry_policy),
                "can_subset": assets_def.can_subset,
                "required_resources": sorted(assets_def.required_resource_keys),
            },
            "io_manager": assets_def.get_io_manager_key_for_asset_key(spec.key),
            "dagster_type": op.outs[output].dagster_type.display_name,
            "checks": sorted(
                key.name for key in assets_def.check_keys if key.asset_key == spec.key
            ),
        }
    return assets


def _checks(defs: dg.Definitions) -> dict[str, object]:
    """Every check spec, whether declared on an asset or in a checks definition of its own."""
    owners = [
        *(defs.resolve_assets_def(key) for key in defs.resolve_all_asset_keys()),
        *(definition for definition in defs.asset_checks or () if hasattr(definition, "op")),
    ]
    checks: dict[str, object] = {}
    for owner in owners:
        for spec in owner.check_specs:
            checks[_check_key(spec.key)] = {
                "computed_by": owner.op.name,
                "blocking": spec.blocking,
                "partitions": _partitions(spec.partitions_def),
                "additional_deps": sorted(
                    dep.asset_key.to_user_string() for dep in spec.additional_deps
                ),
                "automation_condition": _automation(spec.automation_condition),
            }
    return dict(sorted(checks.items()))


def _jobs(defs: dg.Definitions) -> dict[str, object]:
    repository = defs.get_repository_def()
    implicit = set(repository.get_implicit_asset_job_names())
    graph = defs.resolve_asset_graph()
    # An asset job (`dg.define_asset_job`) is declared by its selection.
    selections = {
        job.name: sorted(key.to_user_string() for key in job.selection.resolve(graph))
        for job in defs.jobs or ()
        if isinstance(getattr(job, "selection", None), dg.AssetSelection)
    }
    return {
        job.name: {
            "assets": selections.get(job.name),
            "nodes": sorted(job.graph.node_names()),
            "partitions": _partitions(job.partitions_def),
            "executor": job.executor_def.name,
            "op_retry_policy": _retry_policy(job.op_retry_policy),
            "tags": _plain(dict(sorted(job.tags.items()))),
            "run_tags": _plain(dict(sorted(job.run_tags.items()))),
        }
        for job in sorted(repository.get_all_jobs(), key=lambda job: job.name)
        if job.name not in implicit
    }


def _schedules(defs: dg.Definitions) -> dict[str, object]:
    repository = defs.get_repository_def()
    return {
        schedule.name: {
            "cron_schedule": _plain(schedule.cron_schedule),
            "timezone": schedule.execution_timezone,
            "default_status": schedule.default_status.value,
            "job": schedule.job_name,
            "tags": _plain(dict(sorted(schedule.tags.items()))),
        }
        for schedule in sorted(repository.schedule_defs, key=lambda schedule: schedule.name)
    }


def _sensors(defs: dg.Definitions) -> dict[str, object]:
    repository = defs.get_repository_def()
    return {
        sensor.name: {
            "type": sensor.sensor_type.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
            "jobs": sorted(job.name for job in sensor.jobs) if sensor.has_jobs else [],
            "asset_selection": None
            if sensor.asset_selection is None
            else sorted(
                key.to_user_string()
                for key in sensor.asset_selection.resolve(defs.resolve_asset_graph())
            ),
        }
        for sensor in sorted(repository.sensor_defs, key=lambda sensor: sensor.name)
    }


def _resource_value(value: object, top_level: Mapping[str, object]) -> object:
    """A nested resource by the key it is bound to at the top level (else by its class)."""
    for key, resource in top_level.items():
        if value is resource:
            return {"resource": key}
    if isinstance(value, dg.ConfigurableResource | dg.ConfigurableIOManager):
        return {"resource_class": type(value).__name__}
    return _plain(value)


def _resources(defs: dg.Definitions) -> dict[str, object]:
    top_level = dict(defs.resources or {})
    resources: dict[str, object] = {}
    for key, resource in sorted(top_level.items()):
        cls = type(resource)
        entry: dict[str, object] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
        if isinstance(resource, dg.ConfigurableResource | dg.ConfigurableIOManager):
            entry["fields"] = {
                name: {
                    "default": REQUIRED if field.is_required() else _plain(field.get_default()),
                    "value": _resource_value(getattr(resource, name), top_level),
                }
                for name, field in cls.model_fields.items()
            }
        resources[key] = entry
    return resources


def snapshot(defs: dg.Definitions) -> dict[str, object]:
    """Everything `defs` ships, as plain JSON values."""
    return {
        "assets": _assets(defs),
        "asset_checks": _checks(defs),
        "jobs": _jobs(defs),
        "schedules": _schedules(defs),
        "sensors": _sensors(defs),
        "resources": _resources(defs),
        "loggers": sorted(defs.loggers or {}),
        "executor": defs.executor.name if defs.executor else None,
    }


def render(data: Mapping[str, object]) -> str:
    """Indented JSON, with each small leaf (a field's default and value, a list of names) on one
    line so that a change reads as one changed line."""
    return _render(data, 0) + "\n"


def _render(value: object, depth: int, key: str = "") -> str:
    """`value` after `key` on a line indented `depth` times: on that line if it fits."""
    margin = " " * INDENT * depth
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or len(margin + key + flat) <= LINE_LENGTH:
        return flat
    inner = " " * INDENT * (depth + 1)
    if isinstance(value, dict):
        items = []
        for name, item in value.items():
            label = f"{json.dumps(name)}: "
            items.append(inner + label + _render(item, depth + 1, label))
        return "{\n" + ",\n".join(items) + "\n" + margin + "}"
    items = [inner + _render(item, depth + 1) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + margin + "]"


def pinned_environment() -> dict[str, str]:
    """This process's environment without any project or Dagster setting, plus `PINNED_ENV`."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIXES)}
    return {**kept, **PINNED_ENV}


def shipped_snapshot() -> str:
    """The snapshot text of `defs` as loaded in a child process with the pinned environment."""
    with tempfile.TemporaryDirectory(prefix="defs-snapshot-") as folder:
        env = pinned_environment()
        path = env.get("PYTHONPATH")
        completed = subprocess.run(
            [sys.executable, "-m", "candle_pipeline_tests.defs_snapshot", "--print"],
            cwd=folder,
            env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), path]))},
            capture_output=True,
            text=True,
            check=False,
        )
    if completed.returncode != 0:
        raise RuntimeError(f"loading the definitions failed:\n{completed.stderr}")
    return completed.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT_FILE.name}")
    action.add_argument("--print", action="store_true", help="print this process's snapshot")
    args = parser.parse_args(argv)
    if args.print:
        from candle_pipeline.definitions import defs  # noqa: PLC0415

        sys.stdout.write(render(snapshot(defs())))
        return 0
    SNAPSHOT_FILE.parent.mkdir(exist_ok=True)
    SNAPSHOT_FILE.write_text(shipped_snapshot())
    print(f"wrote {SNAPSHOT_FILE.relative_to(CHECKOUT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
