"""The settings the warehouse modules need themselves: the warehouse URL's and schema's variables,
how a URL and an SQL name are checked, a URL masked for display, and `SettingsError`.

They sit below `settings`, which reads the resources' declared defaults and so stands above the
resources and the warehouse modules; `settings` maps every other variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_DATABASE_URL = "CANDLE_DATABASE_URL"  # warehouse: database_url, through dg.EnvVar
ENV_WAREHOUSE_SCHEMA = "CANDLE_WAREHOUSE_SCHEMA"
DEFAULT_WAREHOUSE_SCHEMA = "market"
# Schema, table and column names: lower-case SQL identifiers, never quoted user text.
SQL_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class SettingsError(ValueError):
    """A setting from the environment is missing or malformed; the message names it."""


def warehouse_schema(environ: Mapping[str, str] | None = None) -> str:
    """CANDLE_WAREHOUSE_SCHEMA, validated: read on its own by the table definitions."""
    env = os.environ if environ is None else environ
    name = env.get(ENV_WAREHOUSE_SCHEMA, "").strip() or DEFAULT_WAREHOUSE_SCHEMA
    return validate_identifier(name, ENV_WAREHOUSE_SCHEMA)


def validate_identifier(name: str, what: str) -> str:
    """`name` if it is a plain lower-case SQL identifier, else a SettingsError naming `what`."""
    if not SQL_IDENTIFIER.fullmatch(name):
        raise SettingsError(
            f"{what}={name!r} is not a valid SQL name (lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters)"
        )
    return name


def validate_postgres_url(url: str, what: str) -> None:
    """Refuse anything but a postgresql:// URL; the error never repeats the password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError(f"{what} is not a valid URL (expected postgresql://...)") from None
    if parsed.get_backend_name() != "postgresql":
        raise SettingsError(f"{what} must be a postgresql:// URL, got scheme {parsed.drivername!r}")
    if not parsed.database:
        raise SettingsError(f"{what} must name a database: {mask_url(url)}")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and metadata."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"
