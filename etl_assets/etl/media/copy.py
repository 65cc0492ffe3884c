"""Media files of an export (``media/<docid>.<n>.<ext>``), copied into the artifact store.

Only regular files whose names are plain ``media/<name>`` are taken: no directories,
links, devices, ``..`` or absolute paths, so nothing is ever written outside the store.
The members come from the extractor's index (one walk of the archive for the whole load).

The copy is bounded and honest:

- A file larger than the per-file limit, or one that would take the export's media
  past the total limit, is skipped. Sizes are counted as they are written (a sparse or
  compressed member counts its expanded bytes), and writing stops the moment a limit
  is passed, whatever the header said.
- A file that cannot be read (bad CRC, truncated data) is recorded as damaged; the
  rest is still copied.
- A file is written under a temporary name and renamed when complete, so the final
  name never holds a partial or empty file.

The outcome (every file not stored, with the reason) is written to a small report,
``<artifacts>/media_copies/<sha256>.json``, from which the load sets
``attachments.media_status`` in its publishing transaction.
"""

from __future__ import annotations

import json
import logging
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from .. import durable
from ..schema import MEDIA_FILES_SCHEMA
from ..extract import ARCHIVE_ERRORS, Extractor, MediaEntry, MediaSource
from ..faults import crash_point
from ..pids import process_alive

log = logging.getLogger(__name__)
MEDIA_DIR = "media"
REPORTS_DIR = "media_copies"
_CHUNK = 1 << 20

MIB = 1 << 20
DEFAULT_MAX_FILE_BYTES = 512 * MIB
"""Per-file limit by default: a little above the 300 MB Skype allowed for one shared file."""
MIN_FREE_BYTES = 1 << 30
FREE_FRACTION = 0.05
"""The total limit by default keeps this much of the artifact store's disk free (at least 1 GiB)."""

STORED, SKIPPED, DAMAGED, PENDING, MISSING = "stored", "skipped", "damaged", "pending", "missing"


@dataclass(frozen=True)
class MediaLimits:
    """How many bytes the copy may write: per file and for the export's media in total."""

    max_file_bytes: int
    max_total_bytes: int


def media_limits(artifacts_dir: Path, max_file_bytes: int | None = None, max_total_bytes: int | None = None) -> MediaLimits:
    """The limits, with defaults for what is not set: 512 MiB per file, and in total what the
    artifact store's disk has free beyond a safety margin (5% of the disk, at least 1 GiB)."""
    if max_total_bytes is None:
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(artifacts_dir)
        margin = max(MIN_FREE_BYTES, int(usage.total * FREE_FRACTION))
        max_total_bytes = max(0, usage.free - margin)
    return MediaLimits(DEFAULT_MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes, max_total_bytes)


@dataclass
class MediaReport:
    """What one media copy did; ``skipped`` and ``damaged`` map ``media/<file>`` to the reason."""

    sha256: str
    files: int = 0
    stored: int = 0
    copied: int = 0
    copied_bytes: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)

    def outcome(self) -> dict[str, dict[str, str]]:
        """The files that are not stored, by status: what the load needs to publish statuses."""
        return {SKIPPED: self.skipped, DAMAGED: self.damaged}

    def counts(self) -> dict[str, int]:
        return {"files": self.files, STORED: self.stored, SKIPPED: len(self.skipped), DAMAGED: len(self.damaged)}


def report_path(artifacts_dir: Path, sha256: str) -> Path:
    return Path(artifacts_dir) / REPORTS_DIR / f"{sha256}.json"


def write_report(artifacts_dir: Path, report: MediaReport) -> Path:
    """Write the report atomically and durably: it exists only once the copied files are on disk."""
    path = report_path(artifacts_dir, report.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    durable.sync_filesystem(path.parent)  # the media files it vouches for
    durable.write_atomic(path, json.dumps(asdict(report)))
    return path


def read_report(artifacts_dir: Path, sha256: str) -> MediaReport | None:
    """The report of the last complete copy of an export's media, or ``None``."""
    try:
        return MediaReport(**json.loads(report_path(artifacts_dir, sha256).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def media_file_batches(extractor: Extractor, batch_rows: int = 65_536) -> Iterator[pa.RecordBatch]:
    """The archive's media files as :data:`schema.MEDIA_FILE_COLUMNS` batches, from member names only.

    The load joins them to ``attachments.doc_id`` to set ``media_path``, so no process holds a
    docid -> file mapping while it builds rows. Per docid the smallest ``preference`` wins: the
    last ``.1.`` file (the content; ``.2.`` is a preview), else the first file; manifests
    (``.json``) name no attachment's file.
    """
    docids: list[str] = []
    paths: list[str] = []
    preferences: list[int] = []
    for ordinal, entry in enumerate(_media_entries(extractor)):
        docid, _, rest = entry.file_name.partition(".")
        if rest == "json" or rest.endswith(".json"):
            continue
        docids.append(docid)
        paths.append(f"{MEDIA_DIR}/{entry.file_name}")
        preferences.append(-1 - ordinal if rest.startswith("1.") else ordinal)
        if len(docids) == batch_rows:
            yield _media_batch(docids, paths, preferences)
            docids, paths, preferences = [], [], []
    if docids:
        yield _media_batch(docids, paths, preferences)


def _media_batch(docids: list[str], paths: list[str], preferences: list[int]) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(docids, pa.string()), pa.array(paths, pa.string()), pa.array(preferences, pa.int64())],
        schema=MEDIA_FILES_SCHEMA,
    )


def count_media(extractor: Extractor) -> int:
    """How many media files (manifests included) :func:`copy_media` would take."""
    return len(_media_entries(extractor))


def copy_media(extractor: Extractor, artifacts_dir: Path, *, sha256: str, limits: MediaLimits) -> MediaReport:
    """Copy every media file (manifests included) into ``<artifacts_dir>/media`` within ``limits``.

    Files already there with the right size are kept (a copy is only ever renamed into
    place complete), so a re-run copies only what is missing; kept files count towards
    the total like copied ones, so a re-run decides exactly as the first run did.
    """
    media_dir = Path(artifacts_dir) / MEDIA_DIR
    entries = _media_entries(extractor)
    report = MediaReport(sha256=sha256, files=len(entries), limits=asdict(limits))
    if not entries:
        return report
    media_dir.mkdir(parents=True, exist_ok=True)
    _remove_orphan_parts(media_dir)
    total = 0
    with extractor.open_media() as source:
        for entry in entries:
            path = f"{MEDIA_DIR}/{entry.file_name}"
            target = media_dir / entry.file_name
            if _size(target) == entry.size:
                report.stored += 1
                total += entry.size
                continue
            status, written, reason = _copy_entry(source, entry, target, limits, total)
            if status == STORED:
                report.stored += 1
                report.copied += 1
                report.copied_bytes += written
                total += written
            else:
                log.warning("%s: %s %s: %s", extractor.name, status, entry.info_name, reason)
                (report.skipped if status == SKIPPED else report.damaged)[path] = reason
    return report


class _OverLimit(Exception):
    """Writing a file passed a limit; the file is skipped."""


class _Damaged(Exception):
    """A member could not be read; the file is recorded as damaged."""


def _copy_entry(
    source: MediaSource, entry: MediaEntry, target: Path, limits: MediaLimits, total: int
) -> tuple[str, int, str]:
    """(status, bytes written, reason) of copying one entry to ``target`` through a temporary name."""
    remaining = max(0, limits.max_total_bytes - total)
    over = _limit_reason(entry, entry.size, limits, remaining)
    if over is not None:  # the header already says it is too big: not a byte written
        return SKIPPED, 0, over
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        extent = source.extent(entry)
        limit = min(limits.max_file_bytes, remaining)
        if extent is not None:
            written = _copy_extent(extent, entry, tmp)
        else:
            written = _write_bounded(source.open, entry, tmp, limit)
    except _OverLimit as e:
        tmp.unlink(missing_ok=True)
        return SKIPPED, 0, _limit_reason(entry, int(str(e)), limits, remaining) or "over a limit"
    except _Damaged as e:
        tmp.unlink(missing_ok=True)
        return DAMAGED, 0, f"{entry.info_name}: cannot be read ({e})"
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return STORED, written, ""


def _limit_reason(entry: MediaEntry, size: int, limits: MediaLimits, remaining: int) -> str | None:
    """Why ``size`` bytes of ``entry`` pass a limit, or ``None``."""
    if size > limits.max_file_bytes:
        return (
            f"{entry.info_name}: {size} bytes or more, over the per-file limit of "
            f"{limits.max_file_bytes} bytes (ETL_MEDIA_MAX_FILE_BYTES)"
        )
    if size > remaining:
        return (
            f"{entry.info_name}: {size} bytes or more would take this export's media past the total limit of "
            f"{limits.max_total_bytes} bytes (ETL_MEDIA_MAX_TOTAL_BYTES)"
        )
    return None


def _copy_extent(extent: tuple[int, int], entry: MediaEntry, tmp: Path) -> int:
    """Copy the entry's bytes from the archive file inside the kernel (``copy_file_range``).

    Only for a plain tar's regular, non-sparse member: its header gives its exact size,
    which the limits have already admitted, and its bytes lie contiguously at ``offset``.
    A short archive (truncated) is :class:`_Damaged`.
    """
    fd, offset = extent
    written = 0
    with open(tmp, "wb") as out:
        while written < entry.size:
            step = min(_CHUNK, entry.size - written)
            try:
                n = os.copy_file_range(fd, out.fileno(), step, offset + written)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                n = os.sendfile(out.fileno(), fd, offset + written, step)
            if n == 0:
                raise _Damaged(f"{written} bytes where its header says {entry.size}")
            written += n
            crash_point("media.chunk_written")
    return written


def _write_bounded(open_entry: Callable[[MediaEntry], BinaryIO], entry: MediaEntry, tmp: Path, limit: int) -> int:
    """Stream the entry into ``tmp``; stop past ``limit`` bytes. Read errors become :class:`_Damaged`."""
    written = 0
    with open(tmp, "wb") as out:
        try:
            source = open_entry(entry)
        except ARCHIVE_ERRORS as e:
            raise _Damaged(e) from None
        with source:
            while True:
                try:
                    chunk = source.read(_CHUNK)
                except ARCHIVE_ERRORS as e:
                    raise _Damaged(e) from None
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:
                    raise _OverLimit(written)
                out.write(chunk)
                crash_point("media.chunk_written")
    if written != entry.size:
        raise _Damaged(f"{written} bytes where its header says {entry.size}")
    return written


def _remove_orphan_parts(media_dir: Path) -> None:
    """Delete temporary files (``.<name>.<pid>.part``) of copies whose process is gone (a crash)."""
    for part in media_dir.glob(".*.part"):
        pid = part.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            part.unlink(missing_ok=True)


def _media_entries(extractor: Extractor) -> list[MediaEntry]:
    if extractor.path is None or extractor.container not in ("tar", "tar.gz", "zip"):
        return []
    return extractor.members().media


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
