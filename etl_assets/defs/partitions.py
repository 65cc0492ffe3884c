"""One dynamic partition per export file: ``<safe file name>-<first 8 hex of sha256>``."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

skype_exports = dg.DynamicPartitionsDefinition(name="skype_exports")

EXPORT_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".json", ".json.gz")
_UNSAFE = re.compile(r"[^a-z0-9]+")


def export_stem(file_name: str) -> str:
    """File name without its export suffix, lowercased, with runs of other characters as ``_``."""
    name = Path(file_name).name.lower()
    for suffix in EXPORT_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _UNSAFE.sub("_", name).strip("_")[:48] or "export"


def partition_key_for(file_name: str, sha256: str) -> str:
    """Stable, URL- and path-safe key: same name and content give the same key."""
    return f"{export_stem(file_name)}-{sha256[:8]}"


def sha_prefix(partition_key: str) -> str:
    return partition_key.rsplit("-", 1)[-1]
