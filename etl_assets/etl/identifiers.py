"""Warehouse schema names: checked once, before anything is created.

The loader stages into ``<schema>_staging``. PostgreSQL silently truncates identifiers
longer than 63 bytes, so a long schema name would make the staging schema collapse into
(or collide with) another schema; a name is refused unless its staging name fits. Names
are plain lowercase identifiers so that they mean the same quoted and unquoted (``psql``
gets the schema in an unquoted ``search_path``).
"""

from __future__ import annotations

import re

from .errors import InvalidSettingError

POSTGRES_IDENTIFIER_BYTES = 63
STAGING_SUFFIX = "_staging"
MAX_SCHEMA_BYTES = POSTGRES_IDENTIFIER_BYTES - len(STAGING_SUFFIX.encode())
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def staging_schema_name(schema: str) -> str:
    """The schema the loader stages into for ``schema``."""
    return f"{schema}{STAGING_SUFFIX}"


def check_schema_name(schema: str, setting: str = "ETL_SCHEMA") -> str:
    """Return ``schema`` if the warehouse and its staging schema can both be named by it.

    Raises :class:`InvalidSettingError` naming ``setting`` otherwise.
    """
    if not _PLAIN_IDENTIFIER.fullmatch(schema or ""):
        raise InvalidSettingError(
            setting,
            f"schema name {schema!r} is not a plain identifier "
            "(lowercase letters, digits and underscores, not starting with a digit)",
        )
    if schema.startswith("pg_"):
        raise InvalidSettingError(setting, f"schema name {schema!r} starts with 'pg_', which PostgreSQL reserves")
    size = len(schema.encode())
    if size > MAX_SCHEMA_BYTES:
        raise InvalidSettingError(
            setting,
            f"schema name {schema!r} is {size} bytes; at most {MAX_SCHEMA_BYTES} are allowed so that its "
            f"staging schema (name + {STAGING_SUFFIX!r}) fits PostgreSQL's {POSTGRES_IDENTIFIER_BYTES}-byte identifier limit",
        )
    return schema
