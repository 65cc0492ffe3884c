"""ETLPipeline: extract -> transform -> load for one export, with statistics per phase.

Used by the ``skype-etl`` command and by the Dagster assets, which call the three
phases separately and pass the small handles between them. Artifacts live under
one directory: ``raw/<sha256>.<ext>`` (content-addressed copies) and
``transformed/<sha256>/<transform version>/<table>.parquet``. A transformed
dataset with a manifest is complete and is reused instead of recomputed.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import durable
from .config import ETLConfig
from .extract import Extractor
from .faults import crash_point
from .media.copy import MediaReport, copy_media, count_media, media_limits, read_report, write_report
from .private import private_directory, restrict_new_files
from .load.database import resolve_database_url
from .load.loader import ExportInfo, Loader, LoadResult
from .warehouse.queries import Warehouse
from .phase_progress import CountingCheck, StagedRows, io_counter, new_files
from .progress import MemoryMonitor, PhaseStats, ProgressTracker
from .transform.transformer import TRANSFORM_VERSION, Transformer

MANIFEST = "_manifest.json"

ProgressFn = Callable[[str, int, "int | None", str], None]
"""``progress(phase, done, total, unit)``: how far a phase is (``total`` ``None`` while unknown).

Phases and units: ``extract`` bytes read (``B``), ``transform`` messages transformed (``msg``),
``media`` media files copied (``files``), ``load`` rows published (``rows``). Called from a
background thread about every ``PROGRESS_INTERVAL`` seconds while the phase runs (values
between are estimates, below ``total``), and once more from the calling thread when the phase
ends, with ``done == total`` (the exact count): only that last report has ``done == total``.
"""

PROGRESS_INTERVAL = 0.25


@dataclass
class RawHandle:
    """A validated export: where its bytes are and what it holds."""

    path: str
    file_name: str
    sha256: str
    bytes: int
    container: str
    user_id: str | None
    export_date: str | None
    conversations: int
    messages: int
    media_files: int
    identity: list[int] | None = None
    """Device, inode, size, mtime and ctime of ``path`` when hashed: later reads must find the same file."""

    def extractor(self, max_member_bytes: int | None) -> Extractor:
        """An extractor of these bytes that fails if the file was replaced or written to since it was hashed."""
        pinned = tuple(self.identity) if self.identity else None
        shown = self.path if Path(self.path).name == self.file_name else self.file_name  # the user's file, not our copy
        return Extractor(self.path, name=shown, max_member_bytes=max_member_bytes, identity=pinned)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TransformedHandle:
    """A transformed export: one Parquet file per table, with counts."""

    directory: str
    sha256: str
    file_name: str
    bytes: int
    transform_version: str
    transform_id: str
    user_id: str | None
    export_date: str | None
    conversations: int
    message_records: int
    rejected: int
    rows: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    resumed_parts: int = 0
    """Parts kept from an interrupted earlier run instead of being recomputed."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ExportResult:
    """What one export's run did, per phase, as the CLI reports it."""

    raw: RawHandle
    transformed: TransformedHandle
    load: LoadResult
    phases: dict[str, PhaseStats]
    media: MediaReport | None = None

    def summary(self) -> dict:
        return {
            "path": self.raw.path if self.raw.path == self.raw.file_name else self.raw.file_name,
            "sha256": self.raw.sha256,
            "conversations": self.load.conversations,
            "messages": self.load.messages,
            "rejected": self.load.rejected,
            "by_type": self.load.by_type,
            "already_loaded": self.load.already_loaded,
            "resumed": {"transform_parts": self.transformed.resumed_parts, "load_parts": self.load.resumed_parts},
            "media": self.media.counts() if self.media is not None else None,
        }


class ETLPipeline:
    """Runs the components for exports, one phase at a time, measuring each phase."""

    def __init__(
        self, config: ETLConfig, *, run_id: str | None = None, copy_raw: bool = True, progress: ProgressFn | None = None
    ) -> None:
        """``copy_raw``: keep a content-addressed copy of each export (Dagster) or read it in place (the command).

        ``progress``: told how far each phase is (see :data:`ProgressFn`); the core draws nothing itself.
        """
        restrict_new_files()  # message data, media and raw copies: readable by their owner only
        self.config = config
        url = resolve_database_url(config.database_url, home=config.home_dir)
        self.loader = Loader(url, config.schema_name, config=config)
        self.warehouse = Warehouse(url, config.schema_name, config=config)
        self.artifacts_dir = private_directory(config.artifacts_dir)
        self.monitor = MemoryMonitor(config.memory_limit_mb)
        self.tracker = ProgressTracker(self.monitor)
        self.copy_raw = copy_raw
        self.run_id = run_id or uuid.uuid4().hex
        self.progress = progress

    # -- progress ---------------------------------------------------------------------

    @contextmanager
    def _reporting(self, phase: str, total: int | None, unit: str, measure: Callable[[], int]) -> Iterator[list[int]]:
        """Report ``measure()`` while the enclosed work runs; the caller puts the exact final count in ``[0]``.

        ``measure.close()``, when it has one, is called at the end, whatever happened.
        """
        final = [-1]
        if self.progress is None:
            yield final
            return
        progress = self.progress
        stop = threading.Event()
        total = total or None  # nothing to count: shown as a counter until the end

        def sample() -> None:
            while not stop.wait(PROGRESS_INTERVAL):
                try:
                    done = measure()
                except Exception:  # noqa: BLE001 - a failed estimate never fails the load
                    continue
                # ``done == total`` is kept for the final report, which is exact
                progress(phase, min(done, total - 1) if total is not None else done, total, unit)

        progress(phase, 0, total, unit)
        thread = threading.Thread(target=sample, name=f"progress-{phase}", daemon=True)
        thread.start()
        try:
            yield final
        finally:
            stop.set()
            thread.join()
            close = getattr(measure, "close", None)
            if close is not None:
                close()
        done = final[0] if final[0] >= 0 else (total or 0)
        progress(phase, done, done, unit)

    # -- phases ---------------------------------------------------------------------

    def extract(self, path: str | Path, *, file_name: str | None = None) -> tuple[RawHandle, PhaseStats]:
        """Validate the export by reading all of it, and keep a content-addressed copy.

        The validating scan also writes the transform's first checkpoint (the
        conversations and each one's message count), so the transform does not repeat it.
        """
        reads = io_counter("read_chars")
        with self.monitor, self.tracker.phase("extract") as stats, self._reporting("extract", None, "B", reads) as final:
            extractor = Extractor(path, max_member_bytes=self.config.max_member_bytes)
            if self.copy_raw:
                stored, sha, size = extractor.copy_to(self.artifacts_dir / "raw")
                extractor = Extractor(stored, name=str(path), max_member_bytes=self.config.max_member_bytes)
            else:
                stored = extractor.path  # the user's file (or object) in place
                sha, size = _hashed_while(extractor.sha256, extractor.members)
            crash_point("extract.hashed")
            with self._lock(sha):
                done = read_manifest(self._out_dir(sha))
                if done is not None:
                    user_id, export_date = done.user_id, done.export_date
                    conversations, messages = done.conversations, done.message_records
                else:
                    scan, _ = self._transformer(sha).scan(extractor)
                    user_id, export_date = scan.user_id, scan.export_date
                    conversations, messages = scan.conversations, scan.messages
            media = count_media(extractor)
            raw = RawHandle(
                path=str(stored),
                file_name=Path(file_name or path).name,
                sha256=sha,
                bytes=size,
                container=extractor.container,
                user_id=user_id,
                export_date=export_date,
                conversations=conversations,
                messages=messages,
                media_files=media,
                identity=list(extractor.identity) if extractor.identity else None,
            )
            stats.conversations_total = stats.conversations_processed = conversations
            stats.messages_total = stats.messages_processed = messages
            stats.bytes_read = raw.bytes
            final[0] = reads() or raw.bytes
        self.monitor.check()
        return raw, stats

    def transform(self, raw: RawHandle) -> tuple[TransformedHandle, PhaseStats]:
        """Write the Parquet tables, resuming finished chunks, or reuse a complete result."""
        out_dir = self._out_dir(raw.sha256)
        counted = CountingCheck(self.monitor.check)
        with self.monitor, self.tracker.phase("transform") as stats, \
                self._reporting("transform", raw.messages, "msg", lambda: counted.estimate) as final:
            with self._lock(raw.sha256):
                handle = read_manifest(out_dir)
                reused = handle is not None
                if handle is None:
                    handle = self._transform(raw, out_dir, counted)
            final[0] = raw.messages
            stats.conversations_total = raw.conversations
            stats.messages_total = raw.messages
            stats.conversations_processed = 0 if reused else handle.conversations
            stats.messages_processed = 0 if reused else handle.message_records
            stats.rejected = handle.rejected
            stats.bytes_read = 0 if reused else raw.bytes
        self.monitor.check()
        return handle, stats

    def _out_dir(self, sha256: str) -> Path:
        return self.artifacts_dir / "transformed" / sha256 / TRANSFORM_VERSION

    def _transformer(self, sha256: str, check: Callable[[], None] | None = None) -> Transformer:
        out_dir = self._out_dir(sha256)
        return Transformer(
            out_dir.with_name(out_dir.name + ".partial"),
            export_sha256=sha256,
            config=self.config,
            check=check or self.monitor.check,
        )

    @contextmanager
    def _lock(self, sha256: str) -> Iterator[None]:
        """One process at a time works on an export's artifacts; others wait, then reuse."""
        path = self.artifacts_dir / "transformed" / f"{sha256}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _transform(self, raw: RawHandle, out_dir: Path, counted: CountingCheck | None = None) -> TransformedHandle:
        extractor = raw.extractor(self.config.max_member_bytes)
        transformer = self._transformer(raw.sha256, counted)
        if counted is not None:
            # The check runs every CHECK_EVERY messages of the first share; the others go as fast.
            counted.scale = max(1, min(self.config.workers, raw.messages // transformer.min_messages_per_worker))
        result = transformer.run(extractor)
        handle = TransformedHandle(
            directory=str(out_dir),
            sha256=raw.sha256,
            file_name=raw.file_name,
            bytes=raw.bytes,
            transform_version=TRANSFORM_VERSION,
            transform_id=uuid.uuid4().hex,
            user_id=result.user_id,
            export_date=result.export_date,
            conversations=result.conversations,
            message_records=result.message_records,
            rejected=result.rejected,
            rows=dict(result.rows),
            by_type=dict(Counter(result.by_type)),
            parts=result.parts,
            resumed_parts=result.resumed_parts,
        )
        work_dir = transformer.work_dir
        crash_point("transform.before_manifest")
        durable.write_atomic(work_dir / MANIFEST, json.dumps(handle.to_json(), indent=1))
        crash_point("transform.before_rename")
        shutil.rmtree(out_dir, ignore_errors=True)
        durable.replace(work_dir, out_dir)
        return handle

    def load(
        self, transformed: TransformedHandle, *, media: Future[tuple[PhaseStats, MediaReport]] | None = None
    ) -> tuple[LoadResult, PhaseStats]:
        """Stage and publish the transformed export; record the phase statistics.

        ``media``: a media copy running beside the load; the publish waits for it where it sets
        the attachments' statuses. Without it, the outcome of an earlier copy is read from its report.
        """
        rows = sum(n for table, n in transformed.rows.items())
        staged = StagedRows(self.loader, transformed.sha256) if self.progress is not None else None
        with self.monitor, self.tracker.phase("load") as stats, \
                self._reporting("load", rows, "rows", staged or (lambda: 0)) as final:
            result = self.loader.load(
                transformed.directory,
                ExportInfo(
                    sha256=transformed.sha256,
                    file_name=transformed.file_name,
                    user_id=transformed.user_id,
                    export_date=transformed.export_date,
                    bytes=transformed.bytes,
                    transform_version=transformed.transform_version,
                    transform_id=transformed.transform_id,
                    media=(lambda: media.result()[1].outcome()) if media is not None
                    else self._media_outcome(transformed.sha256),
                ),
            )
            stats.conversations_total = stats.conversations_processed = result.conversations
            stats.messages_total = transformed.message_records
            stats.messages_processed = transformed.rows.get("messages", 0)
            stats.rejected = result.rejected
            final[0] = rows
        self.monitor.check()
        return result, stats

    def record_stats(self, sha256: str, phases: list[PhaseStats]) -> None:
        """Append the phases' statistics to ``etl_phase_stats`` (the schema is created first if needed)."""
        self.loader.ensure_schema()
        self.warehouse.record_phase_stats(
            [{"export_sha256": sha256, "run_id": self.run_id, **p.to_dict()} for p in phases]
        )

    # -- whole runs -------------------------------------------------------------------

    def copy_media(self, raw: RawHandle) -> tuple[PhaseStats, MediaReport]:
        """Copy the export's media files into ``<artifacts>/media`` (the attachments name them).

        Within the media limits; skipped and damaged files are recorded in the copy's report,
        which the load publishes as attachment statuses.
        """
        files = new_files(self.artifacts_dir / "media")
        with self.monitor, self.tracker.phase("media", cpu_clock=time.thread_time) as stats, \
                self._reporting("media", raw.media_files, "files", files) as final:
            extractor = raw.extractor(self.config.max_member_bytes)
            limits = media_limits(self.artifacts_dir, self.config.media_max_file_bytes, self.config.media_max_total_bytes)
            report = copy_media(extractor, self.artifacts_dir, sha256=raw.sha256, limits=limits)
            write_report(self.artifacts_dir, report)
            stats.bytes_read = report.copied_bytes
            stats.rejected = len(report.skipped) + len(report.damaged)
            stats.conversations_processed = 0
            stats.messages_total = raw.media_files
            stats.messages_processed = report.copied
            final[0] = report.copied
        return stats, report

    def load_with_media(
        self, raw: RawHandle, transformed: TransformedHandle, *, always_copy: bool = False
    ) -> tuple[LoadResult, PhaseStats, tuple[PhaseStats, MediaReport] | None]:
        """The load, with the media copy (when the archive has files, or ``always_copy``) in a thread beside it.

        The load is mostly the database server's work and the copy mostly the kernel's, so they
        overlap; the publish waits for the copy where it sets the attachments' statuses.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="media-copy") as pool:
            copying = pool.submit(self.copy_media, raw) if raw.media_files or always_copy else None
            try:
                loaded, load_stats = self.load(transformed, media=copying)
            except BaseException:
                if copying is not None:
                    copying.cancel()  # a load that failed before the copy started: no copy
                raise
        return loaded, load_stats, copying.result() if copying is not None else None

    def _media_outcome(self, sha256: str) -> dict[str, dict[str, str]] | None:
        """The finished media copy's outcome for the load, or ``None`` (statuses stay ``pending``)."""
        report = read_report(self.artifacts_dir, sha256)
        return report.outcome() if report is not None else None

    def run(self, path: str | Path) -> ExportResult:
        """All phases for one export: extract, transform, then the load with the media copy beside it.

        The load is mostly the database server's work, so the copy (mostly the kernel's) runs in a
        thread meanwhile; the publish waits for it where it sets the attachments' statuses.
        """
        raw, extract_stats = self.extract(path)
        transformed, transform_stats = self.transform(raw)
        phases = [extract_stats, transform_stats]
        loaded, load_stats, copied = self.load_with_media(raw, transformed)
        media = None
        if copied is not None:
            media_stats, media = copied
            phases.append(media_stats)
        phases.append(load_stats)
        self.record_stats(raw.sha256, phases)
        return ExportResult(raw, transformed, loaded, {p.phase: p for p in phases}, media)


def _hashed_while(hash_file: Callable[[], tuple[str, int]], work: Callable[[], object]) -> tuple[str, int]:
    """``hash_file()`` in a thread while ``work()`` runs here: hashing releases the GIL, so they overlap."""
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as pool:
        hashing = pool.submit(hash_file)
        try:
            work()
        finally:
            result = hashing.result()  # the hash's own error first: it names an unreadable file
    return result


def read_manifest(directory: str | Path) -> TransformedHandle | None:
    """The handle of a complete transformed dataset, or ``None`` if there is none."""
    manifest = Path(directory) / MANIFEST
    if not manifest.is_file():
        return None
    try:
        return TransformedHandle(**json.loads(manifest.read_text()))
    except (ValueError, TypeError):
        return None
