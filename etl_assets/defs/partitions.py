"""One dynamic partition per export file: ``<safe file name>-<first 12 hex of its fingerprint>``.

The id is the content fingerprint (``etl/extract/fingerprint.py``), which the inbox sensor can
afford for any file size; ``raw_export`` checks it against the bytes it copies.
"""

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


KEY_ID_LENGTH = 12


def partition_key_for(file_name: str, fingerprint: str) -> str:
    """Stable, URL- and path-safe key: same name and content give the same key."""
    return f"{export_stem(file_name)}-{fingerprint[:KEY_ID_LENGTH]}"


def key_id(partition_key: str) -> str:
    """The fingerprint prefix a partition key ends with."""
    return partition_key.rsplit("-", 1)[-1]


PUBLISHED = dg.AssetKey(["skype", "exports"])
"""The asset whose materialization of a partition means that export is published (``skype_tables``)."""


def published_partitions(instance: dg.DagsterInstance) -> set[str]:
    """The export partitions already published through Dagster (a demo, a backfill, an earlier run)."""
    return instance.get_materialized_partitions(PUBLISHED)
