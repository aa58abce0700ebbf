"""Wires a process to its databases and Dagster home.

With CANDLE_DATABASE_URL unset, the embedded PostgreSQL under the state folder serves both the
warehouse (database `candle`) and the Dagster instance (database `dagster`). With it set, that
server is used and nothing is started. Either way the URLs are handed to Dagster and to child
processes through the environment, never written to a file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from candle_pipeline.local_postgres import LocalPostgres, running_as_root
from candle_pipeline.settings import (
    ENV_DAGSTER_DATABASE_URL,
    ENV_DAGSTER_HOME,
    ENV_DATABASE_URL,
    PROJECT_DIR,
    Settings,
    SettingsError,
)

DAGSTER_YAML = "dagster.yaml"
# The settings file every process reads: Dagster's own convention (`dagster dev`, the webserver
# and the daemon load it from the folder they start in), read the same way by the command line.
ENV_FILE = ".env"
FALLBACK_CLUSTER_ROOT = Path("/var/tmp/candle-pipeline")
# The databases of the embedded server: the warehouse and the Dagster instance.
WAREHOUSE_DATABASE = "candle"
DAGSTER_DATABASE = "dagster"
FALLBACK_DIGEST_LENGTH = 12


@dataclass(frozen=True)
class Environment:
    """The URLs and folders this process runs with."""

    warehouse_url: str
    dagster_url: str
    dagster_home: Path
    embedded: LocalPostgres | None


def load_env_file(folder: Path | None = None) -> Path | None:
    """Export the variables of `.env` in `folder` (default: the working folder) that are not set
    already, as Dagster's commands do; the file's path, or None without one."""
    path = (folder or Path.cwd()) / ENV_FILE
    if not path.is_file():
        return None
    for name, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(name, value)
    return path


def embedded_server(settings: Settings) -> LocalPostgres:
    """The embedded server of this state folder.

    As root the server runs as the `postgres` user, which must be able to reach its folder. When
    the checkout sits below a folder closed to other users (say /root), the cluster lives in
    /var/tmp instead and the state folder holds a link to it.
    """
    in_checkout = settings.state_dir / "postgres"
    if not running_as_root() or reachable_by_others(settings.state_dir):
        return LocalPostgres(in_checkout)
    digest = hashlib.sha1(str(settings.state_dir).encode(), usedforsecurity=False).hexdigest()
    outside = FALLBACK_CLUSTER_ROOT / digest[:FALLBACK_DIGEST_LENGTH]
    outside.mkdir(parents=True, exist_ok=True)
    outside.parent.chmod(0o755)
    outside.chmod(0o755)
    if not in_checkout.is_symlink():
        in_checkout.parent.mkdir(parents=True, exist_ok=True)
        in_checkout.symlink_to(outside, target_is_directory=True)
    return LocalPostgres(outside)


def reachable_by_others(folder: Path) -> bool:
    """True when every existing folder on the way to `folder` lets other users pass."""
    return all(
        ancestor.stat().st_mode & stat.S_IXOTH
        for ancestor in [folder, *folder.parents]
        if ancestor.exists()
    )


def prepare(settings: Settings) -> Environment:
    """Start what is needed and export CANDLE_DATABASE_URL, its Dagster twin and DAGSTER_HOME."""
    embedded = None
    if settings.database_url is None:
        embedded = embedded_server(settings)
        embedded.start()
        embedded.ensure_database(WAREHOUSE_DATABASE)
        if settings.dagster_database_url is None:
            embedded.ensure_database(DAGSTER_DATABASE)
    warehouse_url, dagster_url = database_urls(settings)
    dagster_home = settings.dagster_home or default_dagster_home(settings)
    os.environ[ENV_DATABASE_URL] = warehouse_url
    os.environ.update(instance_environment(dagster_url, dagster_home))
    return Environment(warehouse_url, dagster_url, dagster_home, embedded)


def database_urls(settings: Settings) -> tuple[str, str]:
    """The warehouse and Dagster instance URLs of `settings`; starts and creates nothing."""
    if settings.database_url is None:
        server = embedded_server(settings)
        warehouse_url = server.url(WAREHOUSE_DATABASE)
        return warehouse_url, settings.dagster_database_url or server.url(DAGSTER_DATABASE)
    return settings.database_url, settings.dagster_database_url or settings.database_url


def instance_environment(dagster_url: str, dagster_home: Path) -> dict[str, str]:
    """Where the Dagster instance lives: the webserver, the daemon and runs started from here
    inherit it (the instance's other settings have defaults in its classes)."""
    return {ENV_DAGSTER_DATABASE_URL: dagster_url, ENV_DAGSTER_HOME: str(dagster_home)}


def default_dagster_home(settings: Settings) -> Path:
    """state/dagster_home, holding a link to the project's dagster.yaml."""
    source = PROJECT_DIR / DAGSTER_YAML
    if not source.is_file():
        raise SettingsError(
            f"{ENV_DAGSTER_HOME} is not set and no {DAGSTER_YAML} was found next to the package; "
            f"set {ENV_DAGSTER_HOME} to a folder holding the project's {DAGSTER_YAML}"
        )
    home = settings.state_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    link = home / DAGSTER_YAML
    if not link.is_symlink() or link.resolve() != source:
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return home
