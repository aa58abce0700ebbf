"""Concurrency pools: which assets share a limited resource, and the limit the instance holds.

A pool's limit is state of the Dagster instance (like `dagster instance concurrency set`), not of
dagster.yaml; `apply_pool_limits` writes the limits the settings ask for, idempotently.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from candle_pipeline.settings import ENV_MARKET_API_POOL_LIMIT, OperationsSettings

# The concurrency pool of every step that calls the market-data provider. Its limit is how many
# such steps run at once across all run workers (`pools apply`, `demo` and `ui` set it); the
# request rate itself is the token bucket's, shared through the warehouse.
MARKET_API_POOL = "market_api"
# The setting that holds each pool's limit.
LIMIT_VARIABLES = {MARKET_API_POOL: ENV_MARKET_API_POOL_LIMIT}


def wanted_limits(operations: OperationsSettings) -> dict[str, int]:
    """The limit of every pool the project defines."""
    return {MARKET_API_POOL: operations.market_api_pool_limit}


def current_limits(instance: dg.DagsterInstance) -> dict[str, int]:
    """The limits the instance holds now, by pool."""
    return {
        limit.name: limit.limit
        for limit in instance.event_log_storage.get_pool_limits()
        if not limit.from_default
    }


def apply_pool_limits(
    instance: dg.DagsterInstance, operations: OperationsSettings
) -> dict[str, tuple[int | None, int]]:
    """Set every pool's limit from the settings; returns the changes as pool -> (before, after)."""
    before = current_limits(instance)
    changes = {}
    for pool, limit in wanted_limits(operations).items():
        if before.get(pool) != limit:
            instance.event_log_storage.set_concurrency_slots(pool, limit)
            changes[pool] = (before.get(pool), limit)
    return changes


def pools_in_use(defs: dg.Definitions) -> Mapping[str, list[str]]:
    """Pool -> the assets whose steps claim a slot of it."""
    graph = defs.resolve_asset_graph()
    users: dict[str, list[str]] = {}
    for key in sorted(graph.get_all_asset_keys()):
        for pool in graph.get(key).pools:
            users.setdefault(pool, []).append(key.to_user_string())
    return users
