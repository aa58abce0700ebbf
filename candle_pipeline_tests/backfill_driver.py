"""Asset backfills driven as the backfill daemon drives them, in this process.

`backfill_instance` is a real instance (the storage shipped in dagster.yaml) whose run launcher runs
each launched run synchronously in this process; `BackfillDriver` loads the project's code
location (`candle_pipeline.definitions`), submits a backfill and runs the daemon's iterations
until the backfill is done. Used by the tests and by the benchmarks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import yaml
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.remote_asset_graph import RemoteWorkspaceAssetGraph
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

from candle_pipeline.settings import PROJECT_DIR

FINISHED = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED}
FINISHED |= {BulkActionStatus.COMPLETED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED}
DEFINITIONS_MODULE = "candle_pipeline.definitions"


def shipped_storage(url: str) -> dict[str, object]:
    """The `storage` section of the project's dagster.yaml, pointed at `url`."""
    storage = yaml.safe_load((PROJECT_DIR / "dagster.yaml").read_text())["storage"]
    [(kind, section)] = storage.items()
    return {kind: {**section, "config": {**section["config"], "postgres_url": url}}}


@contextmanager
def backfill_instance(
    storage: Mapping[str, object],
) -> Iterator[dg.DagsterInstance]:
    """An instance on `storage` whose submitted runs start at once and execute synchronously in
    this process (no run queue, no run worker processes)."""
    with dg.instance_for_test(
        overrides={"storage": dict(storage)},
        synchronous_run_coordinator=True,
        synchronous_run_launcher=True,
    ) as instance:
        yield instance


@dataclass(frozen=True)
class BackfillOutcome:
    backfill: PartitionBackfill
    runs: Sequence[dg.DagsterRun]
    iterations: int
    seconds: float


class BackfillDriver:
    """The project's code location loaded in process, and the backfill daemon's loop."""

    def __init__(self, workspace: WorkspaceProcessContext) -> None:
        self.workspace = workspace
        self.instance = workspace.instance
        self.logger = logging.getLogger("candle_pipeline.backfill_driver")

    @classmethod
    @contextmanager
    def loaded(
        cls, instance: dg.DagsterInstance, module: str = DEFINITIONS_MODULE
    ) -> Iterator[BackfillDriver]:
        """The `defs` of `module` as the code location (the project's, unless told)."""
        target = InProcessWorkspaceLoadTarget(
            InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name=module, attribute="defs"))
        )
        with create_test_daemon_workspace_context(target, instance) as workspace:
            yield cls(workspace)

    def asset_graph(self) -> RemoteWorkspaceAssetGraph:
        return self.workspace.create_request_context().asset_graph

    def submit(
        self,
        partitions_by_asset: Mapping[str, Sequence[str]],
        run_config: Mapping[str, object] | None = None,
    ) -> str:
        """A backfill of exactly these partition keys of these assets, its runs launched with
        `run_config` (as the launchpad of a backfill gives it); returns its id."""
        graph = self.asset_graph()
        subsets = {}
        for name, keys in partitions_by_asset.items():
            key = dg.AssetKey(name)
            partitions_def = graph.get(key).partitions_def
            subsets[key] = partitions_def.subset_with_partition_keys(keys)
        backfill_id = uuid.uuid4().hex[:8]
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=backfill_id,
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=self.instance,
            asset_graph_subset=AssetGraphSubset(
                partitions_subsets_by_asset_key=subsets, non_partitioned_asset_keys=set()
            ),
            title=None,
            description=None,
            run_config=run_config,
        )
        self.instance.add_backfill(backfill)
        return backfill_id

    def run(self, backfill_id: str, max_iterations: int) -> BackfillOutcome:
        """Daemon iterations until the backfill finishes (each launches and runs its runs)."""
        started = time.perf_counter()
        for iteration in range(1, max_iterations + 1):
            errors = [error for error in execute_backfill_iteration(self.workspace, self.logger)]
            real_errors = [error for error in errors if error is not None]
            if real_errors:
                raise RuntimeError(f"backfill daemon error: {real_errors[0].to_string()}")
            backfill = self.instance.get_backfill(backfill_id)
            if backfill is not None and backfill.status in FINISHED:
                runs = self.instance.get_runs(
                    filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id})
                )
                return BackfillOutcome(backfill, runs, iteration, time.perf_counter() - started)
        raise TimeoutError(f"backfill {backfill_id} not finished after {max_iterations} iterations")
