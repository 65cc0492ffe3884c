"""Transformer: one export -> Parquet files per table, in checkpointed chunks.

Output layout under the work directory: ``<table>/<part>.parquet`` plus ``_parts/``
with one JSON marker per finished part. Parts are:

- ``conversations``: written by :meth:`Transformer.scan`, a fast validating pass over
  the file that reads the conversations and counts their messages;
- ``messages-<share>-<chunk>``: messages built by ijson's C backend. The messages are
  split into shares (every n-th message), one process each, so no message crosses a
  process boundary; each share writes a chunk every ``chunk_messages`` messages.

A part's marker is written only after its files are closed, so after a crash at any
point a new run keeps every finished part and redoes only the unfinished ones.
Duplicate copies of a message (edits, server-generated copies) are all written with
their ``version``; the Loader keeps the highest.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import durable, schema
from ..config import ETLConfig, load_config
from ..extract import ConversationRecord, Extractor, MessageRecord
from ..faults import crash_point
from ..media.copy import media_index
from ..values import normalize_person_id
from .rows import RowWriter
from .sink import TableSink

TRANSFORM_VERSION = f"{schema.SCHEMA_VERSION}.9"
"""Changes whenever the transformation's output would change; part of the cache key."""

PARTS_DIR = "_parts"
CheckFn = Callable[[], None]


@dataclass
class PartResult:
    """What one finished part holds."""

    message_records: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    last_index: int = -1
    """Index (in file order) of the last message the part covers."""


@dataclass
class ScanResult:
    """What the validating scan found; saved as the ``conversations`` part's marker."""

    user_id: str | None
    export_date: str | None
    counts: list[int]
    workers: int
    part: PartResult
    media: dict[str, str] | None = None
    """Docid -> its file in the artifact store; ``None`` when the archive has no media folder."""

    @property
    def conversations(self) -> int:
        return len(self.counts)

    @property
    def messages(self) -> int:
        return sum(self.counts)


@dataclass
class TransformResult:
    """What one transform wrote, for the handle and the phase statistics."""

    out_dir: Path
    user_id: str | None
    export_date: str | None
    conversations: int = 0
    message_records: int = 0
    rejected: int = 0
    by_type: Counter = field(default_factory=Counter)
    rows: Counter = field(default_factory=Counter)
    resumed_parts: int = 0
    parts: int = 0

    def add(self, part: PartResult) -> None:
        self.message_records += part.message_records
        self.by_type.update(part.by_type)
        self.rows.update(part.rows)
        self.rejected = self.rows["rejected_records"]
        self.parts += 1


@dataclass(frozen=True)
class MessageShare:
    """Every ``workers``-th message starting at ``index``: one process's part of the work."""

    path: str
    name: str
    max_member_bytes: int | None
    identity: tuple[int, ...] | None
    out_dir: str
    export_sha256: str
    owner_id: str | None
    counts: tuple[int, ...]
    index: int
    workers: int
    config: ETLConfig
    media: dict[str, str] | None


class Transformer:
    """Writes the Parquet parts of one export into ``work_dir``, resuming finished parts."""

    def __init__(
        self,
        work_dir: str | Path,
        *,
        export_sha256: str,
        config: ETLConfig | None = None,
        min_messages_per_worker: int = 25_000,
        check: CheckFn | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.export_sha256 = export_sha256
        self.config = config or load_config()
        self.min_messages_per_worker = min_messages_per_worker
        self.check = check

    # -- pass 1: conversations ----------------------------------------------------------

    def scan(self, extractor: Extractor) -> tuple[ScanResult, bool]:
        """Validate the whole file and write the conversations part (or reuse it).

        Returns the scan and whether it was resumed from an earlier run.
        """
        done = _read_marker(self.work_dir, "conversations")
        if done is not None:
            return ScanResult(**{**done, "part": PartResult(**done["part"])}), True
        for table in schema.TRANSFORMED_TABLES:
            (self.work_dir / table.name).mkdir(parents=True, exist_ok=True)
        sinks = _open_sinks(self.work_dir, "conversations", self.config.batch_size)
        writer = RowWriter(sinks, self.export_sha256)
        counts: list[int] = []
        user_id = export_date = None
        for record in extractor.scan():
            if isinstance(record, ConversationRecord):
                counts.append(record.messages)
                writer.conversation(record)
                if self.check and len(counts) % 4096 == 0:
                    self.check()
            else:
                user_id = normalize_person_id(record.user_id)
                export_date = record.export_date
                writer.owner_id = user_id
        crash_point("transform.scanned")
        writer.flush_people()
        part = PartResult(rows=_close_sinks(sinks))
        workers = max(1, min(self.config.workers, sum(counts) // self.min_messages_per_worker))
        media = media_index(extractor)
        result = ScanResult(user_id, export_date, counts, workers, part, media)
        _write_marker(self.work_dir, "conversations", asdict(result))
        crash_point("transform.scan_marked")
        return result, False

    # -- pass 2: messages -----------------------------------------------------------------

    def run(self, extractor: Extractor) -> TransformResult:
        scan, resumed = self.scan(extractor)
        result = TransformResult(self.work_dir, scan.user_id, scan.export_date, conversations=scan.conversations)
        result.add(scan.part)
        result.resumed_parts += int(resumed)
        workers = scan.workers if extractor.path is not None else 1
        shares = [
            MessageShare(
                path=str(extractor.path or ""),
                name=extractor.name,
                max_member_bytes=extractor.max_member_bytes,
                identity=extractor.identity,
                out_dir=str(self.work_dir),
                export_sha256=self.export_sha256,
                owner_id=scan.user_id,
                counts=tuple(scan.counts),
                index=k,
                workers=workers,
                config=self.config,
                media=scan.media,
            )
            for k in range(workers)
        ]
        if workers == 1:
            outcomes = [transform_share(shares[0], extractor, self.check)]
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers - 1, mp_context=context) as pool:
                futures = [pool.submit(transform_share, share) for share in shares[1:]]
                outcomes = [transform_share(shares[0], extractor, self.check)]
                outcomes += [future.result() for future in futures]
        for parts, resumed_parts in outcomes:
            for part in parts:
                result.add(part)
            result.resumed_parts += resumed_parts
        return result


def transform_share(
    share: MessageShare, extractor: Extractor | None = None, check: CheckFn | None = None
) -> tuple[list[PartResult], int]:
    """Transform one share in chunks, skipping chunks finished by an earlier run.

    Returns the parts of the share and how many of them were resumed.
    """
    work_dir = Path(share.out_dir)
    prefix = f"messages-{share.index}"
    parts = _finished_chunks(work_dir, prefix)
    resumed = len(parts)
    if parts and parts[-1].last_index == _LAST:
        return parts, resumed
    skip_until = parts[-1].last_index if parts else -1
    extractor = extractor or Extractor(
        share.path, name=share.name, max_member_bytes=share.max_member_bytes, identity=share.identity
    )
    chunk = _Chunk(work_dir, prefix, len(parts), share)
    counts = share.counts
    conv, remaining, position = -1, 0, -1
    for i, data in enumerate(extractor.messages()):
        while remaining == 0 and conv + 1 < len(counts):
            conv += 1
            remaining = counts[conv]
            position = -1
        remaining -= 1
        position += 1
        if i % share.workers != share.index or i <= skip_until:
            continue
        chunk.add(MessageRecord(conv, position, data))
        if check is not None and chunk.part.message_records % 2048 == 0:
            check()
        if chunk.part.message_records >= share.config.chunk_messages:
            parts.append(chunk.close(last_index=i))
            chunk = _Chunk(work_dir, prefix, len(parts), share)
    parts.append(chunk.close(last_index=_LAST))
    return parts, resumed


_LAST = 1 << 62
"""``last_index`` of a share's final chunk: the share is complete."""


class _Chunk:
    """One checkpointed chunk of a share: its sinks, rows and marker."""

    def __init__(self, work_dir: Path, prefix: str, number: int, share: MessageShare) -> None:
        self.work_dir = work_dir
        self.name = f"{prefix}-{number:05d}"
        for stale in work_dir.glob(f"*/{self.name}.parquet"):
            stale.unlink()  # left by a run that crashed inside this chunk
        self.sinks = _open_sinks(work_dir, self.name, share.config.batch_size)
        self.writer = RowWriter(self.sinks, share.export_sha256)
        self.writer.owner_id = share.owner_id
        self.writer.media = share.media
        self.part = PartResult()
        self.by_type: Counter = Counter()

    def add(self, record: MessageRecord) -> None:
        self.part.message_records += 1
        self.writer.message(record, self.by_type)

    def close(self, last_index: int) -> PartResult:
        self.writer.flush_people()
        self.part.rows = _close_sinks(self.sinks)
        self.part.by_type = dict(self.by_type)
        self.part.last_index = last_index
        crash_point("transform.chunk_written")
        _write_marker(self.work_dir, self.name, asdict(self.part))
        crash_point("transform.chunk_marked")
        return self.part


def _finished_chunks(work_dir: Path, prefix: str) -> list[PartResult]:
    """The consecutive finished chunks of a share, in order."""
    parts = []
    while (marker := _read_marker(work_dir, f"{prefix}-{len(parts):05d}")) is not None:
        parts.append(PartResult(**marker))
    return parts


def _open_sinks(work_dir: Path, part: str, batch_size: int) -> dict[str, TableSink]:
    return {t.name: TableSink(t, work_dir / t.name / f"{part}.parquet", batch_size) for t in schema.TRANSFORMED_TABLES}


def _close_sinks(sinks: dict[str, TableSink]) -> dict[str, int]:
    return {name: sink.close() for name, sink in sinks.items()}


def _write_marker(work_dir: Path, part: str, content: dict) -> None:
    """Write a part's marker atomically and durably, after its files are complete and synced."""
    directory = work_dir / PARTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    durable.sync_files(sorted(work_dir.glob(f"*/{part}.parquet")))
    durable.write_atomic(directory / f"{part}.json", json.dumps(content))


def _read_marker(work_dir: Path, part: str) -> dict | None:
    path = work_dir / PARTS_DIR / f"{part}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
