"""Garbage collection: leftovers of interrupted runs and artifacts no published export needs.

What is removed (``collect_garbage``):

- ``raw/.incoming-*``: raw copies whose process stopped before the rename;
- ``transformed/<sha256>/<version>.partial``: transform work of an older transform
  version, of an export whose complete dataset exists, or untouched for ``min_age``;
- ``transformed/<sha256>/<version>``: complete datasets of a transform version that is
  neither the current one nor the one the export was published with;
- ``media/.<name>.<pid>.part`` and ``media_copies/.*.<pid>.tmp`` of processes that are gone;
- staging tables and ``<schema>_staging.staged_parts`` rows that no load would resume:
  every tag except those of a complete, unpublished local dataset.

Nothing a running load or transform uses is touched: an export's artifacts only under the
file lock the pipeline takes (``transformed/<sha256>.lock``) and the export's advisory lock
the loader holds; staging tables only under the exclusive staging lock (every load holds
it shared). Both are tried without waiting: what is in use is reported as kept.
Staging and transform work are only ever derived data: removing them costs a re-run work,
never a row.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from .load.connect import _connect, export_lock_key, staging_lock_key
from .pids import process_alive
from .pipeline import MANIFEST
from .transform.transformer import TRANSFORM_VERSION

DEFAULT_MIN_AGE_SECONDS = 3600.0
"""Leftovers younger than this (``.incoming-*``, work directories) may still belong to a run."""
_STAGING_NAME = re.compile(r"^(?P<table>[a-z_]+)_(?P<tag>(?P<sha>[0-9a-f]{12})_[0-9a-f]{8})$")
_PID_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.(?:part|tmp)$")


@dataclass
class Item:
    """One thing found: what, where, how big, and why it goes or stays."""

    kind: str
    target: str
    reason: str
    bytes: int = 0


@dataclass
class GcReport:
    """What a collection removed (or would remove, in a dry run) and what it kept because it is in use."""

    dry_run: bool
    removed: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(item.bytes for item in self.removed)

    def to_json(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "bytes_freed": self.bytes_freed,
            "removed": [asdict(i) for i in self.removed],
            "kept": [asdict(i) for i in self.kept],
        }


def collect_garbage(
    artifacts_dir: str | Path,
    database_url: str,
    schema: str = "skype",
    *,
    dry_run: bool = False,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
) -> GcReport:
    """Remove leftovers and unneeded artifacts (see the module docstring); with ``dry_run`` only report them."""
    artifacts = Path(artifacts_dir)
    report = GcReport(dry_run)
    cutoff = time.time() - min_age_seconds
    conn = _connect(database_url, False)
    try:
        published = _published_versions(conn, schema)
        _collect_incoming(artifacts / "raw", cutoff, report)
        _collect_temporaries(artifacts, report)
        local_tags = _collect_transformed(conn, artifacts / "transformed", published, cutoff, report)
        _collect_staging(conn, f"{schema}_staging", local_tags, report)
        conn.commit()  # the locks taken above are released here, after the removals
    finally:
        conn.close()
    return report


def _published_versions(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    """sha256 -> the transform version each published export was published with."""
    exports = conn.execute("SELECT to_regclass(%s)", (f"{sql.Identifier(schema).as_string(conn)}.exports",)).fetchone()[0]
    if exports is None:
        return {}
    query = sql.SQL("SELECT sha256, transform_version FROM {}.exports").format(sql.Identifier(schema))
    return {sha: version for sha, version in conn.execute(query)}


def _remove(path: Path, item: Item, report: GcReport) -> None:
    report.removed.append(item)
    if report.dry_run:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*"))


def _newest_mtime(path: Path) -> float:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_mtime
    return max([path.lstat().st_mtime, *(p.lstat().st_mtime for p in path.rglob("*"))])


def _collect_incoming(raw: Path, cutoff: float, report: GcReport) -> None:
    for path in sorted(raw.glob(".incoming-*")) if raw.is_dir() else []:
        item = Item("incoming", str(path), "raw copy never completed", _size(path))
        if _newest_mtime(path) > cutoff:
            report.kept.append(Item("incoming", str(path), "recently written: a copy may be under way", item.bytes))
        else:
            _remove(path, item, report)


def _collect_temporaries(artifacts: Path, report: GcReport) -> None:
    """Temporary files named after their process (``.<name>.<pid>.part``/``.tmp``) whose process is gone."""
    for folder in (artifacts / "media", artifacts / "media_copies"):
        for path in sorted(folder.glob(".*")) if folder.is_dir() else []:
            match = _PID_TEMP.match(path.name)
            if match is None or path.is_dir():
                continue
            if process_alive(int(match["pid"])):
                report.kept.append(Item("temporary", str(path), f"process {match['pid']} is still running"))
            else:
                _remove(path, Item("temporary", str(path), f"process {match['pid']} is gone", _size(path)), report)


def _collect_transformed(
    conn: psycopg.Connection, transformed: Path, published: dict[str, str], cutoff: float, report: GcReport
) -> set[str]:
    """Old versions and stale work of every export not in use; the staging tags a local load would resume."""
    resumable: set[str] = set()
    for export_dir in sorted(transformed.iterdir()) if transformed.is_dir() else []:
        sha = export_dir.name
        if not export_dir.is_dir() or not re.fullmatch(r"[0-9a-f]{64}", sha):
            continue
        datasets = sorted(export_dir.iterdir())
        candidates = {d: why for d in datasets if (why := _unneeded(d, published.get(sha), cutoff))}
        in_use = None
        with _file_lock(transformed / f"{sha}.lock") if candidates else nullcontext(True) as free:
            if candidates:
                in_use = None if free else "an extract or transform of this export is running"
                if in_use is None and not _try_lock(conn, export_lock_key(sha)):
                    in_use = "a load of this export is running"
            for dataset in datasets:
                why = candidates.get(dataset)
                kind = "partial" if dataset.name.endswith(".partial") else "old_transform"
                if why and not in_use:
                    _remove(dataset, Item(kind, str(dataset), why, _size(dataset)), report)
                    continue
                if why:
                    report.kept.append(Item(kind, str(dataset), in_use))
                if tag := _resumable_tag(dataset, published.get(sha)):
                    resumable.add(tag)
    return resumable


def _unneeded(dataset: Path, published_version: str | None, cutoff: float) -> str | None:
    """Why a dataset directory of an export is not needed, or ``None`` when it is."""
    if not dataset.is_dir():
        return None
    if dataset.name.endswith(".partial"):
        version = dataset.name[: -len(".partial")]
        if version != TRANSFORM_VERSION:
            return f"unfinished work of transform version {version} (current: {TRANSFORM_VERSION})"
        if (dataset.parent / version / MANIFEST).is_file():
            return "unfinished work of a transform that was completed since"
        if _newest_mtime(dataset) <= cutoff:
            return "unfinished work left untouched past the minimum age"
        return None
    if dataset.name in (TRANSFORM_VERSION, published_version):
        return None
    return f"transform version {dataset.name}: neither current ({TRANSFORM_VERSION}) nor the published one"


def _resumable_tag(dataset: Path, published_version: str | None) -> str | None:
    """The staging tag a load of this complete dataset would resume, unless it is published already."""
    try:
        handle = json.loads((dataset / MANIFEST).read_text())
        sha, transform_id, version = handle["sha256"], handle["transform_id"], handle["transform_version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if version == published_version:
        return None
    return f"{sha[:12]}_{transform_id[:8]}"


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """Try the pipeline's file lock of an export without waiting; yields whether it was free."""
    if not path.exists():
        yield True
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(conn: psycopg.Connection, key: str) -> bool:
    """Take an advisory lock for the rest of the collection's transaction, without waiting."""
    return conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]


def _collect_staging(conn: psycopg.Connection, staging_schema: str, keep_tags: set[str], report: GcReport) -> None:
    """Drop staging tables and ``staged_parts`` rows of tags no local load would resume, unless in use."""
    names = [
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (staging_schema,)
        )
    ]
    if not names:
        return
    by_tag: dict[str, list[str]] = {}
    for name in names:
        match = _STAGING_NAME.match(name)
        if match:
            by_tag.setdefault(match["tag"], []).append(name)
    parts: dict[str, int] = {}
    if "staged_parts" in names:
        query = sql.SQL("SELECT tag, count(*) FROM {}.staged_parts GROUP BY tag").format(sql.Identifier(staging_schema))
        parts = dict(conn.execute(query).fetchall())
    for tag in sorted(set(by_tag) | set(parts)):
        if tag in keep_tags:
            continue
        if not _try_lock(conn, staging_lock_key(tag[:12])):
            for name in by_tag.get(tag, []):
                report.kept.append(Item("staging_table", f"{staging_schema}.{name}", "a load of this export is running"))
            continue
        for name in by_tag.get(tag, []):
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (sql.Identifier(staging_schema, name).as_string(conn),)).fetchone()[0]
            report.removed.append(Item("staging_table", f"{staging_schema}.{name}", "no load would resume it", size or 0))
            if not report.dry_run:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging_schema, name)))
        if tag in parts:
            report.removed.append(Item("staged_parts", f"{staging_schema}.staged_parts tag {tag}", f"{parts[tag]} rows no load would resume"))
            if not report.dry_run:
                conn.execute(
                    sql.SQL("DELETE FROM {}.staged_parts WHERE tag = %s").format(sql.Identifier(staging_schema)), (tag,)
                )
