"""Every name candle-pipeline takes from Dagster's private modules (`dagster._*`), in one place.

Each has no public equivalent in Dagster 1.13 (pinned); the test named beside it fails when an
upgrade moves or changes it, so an upgrade breaks a test, never the product silently.

- `CheckTarget`: the materialisation a check evaluation checked. A run of many days yields one
  `dg.AssetCheckEvaluation` per day, and only this names each day's materialisation; without it
  the check's Partitions tab shows the days as missing (`AssetCheckResult` has no partition).
  Guarded by test_pipeline's `test_every_real_day_passes_its_checks` and test_ui.
- `PartitionKeyFilter`, `AssetCheckExecutionRecordStatus`, `EventLogStorage`: a check's previous
  result on one day, so that a check still failing is not alerted again; Dagster reads check
  history only through its event storage. Guarded by test_alerts.
- The rest: the instance storage of `instance_storage.py` (pooled, batched dagster-postgres;
  README "Dagster's own storage" has the figures). Guarded by test_instance_storage.
"""

from dagster._config.config_schema import UserConfigSchema
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as CheckTarget,
)
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._serdes import ConfigurableClass, ConfigurableClassData

__all__ = [
    "AssetCheckExecutionRecordStatus",
    "CheckTarget",
    "ConfigurableClass",
    "ConfigurableClassData",
    "DagsterStorage",
    "EventLogStorage",
    "LocalComputeLogManager",
    "PartitionKeyFilter",
    "SqlEventLogStorageTable",
    "UserConfigSchema",
    "pg_config",
]
