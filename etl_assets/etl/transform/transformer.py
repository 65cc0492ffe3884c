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
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from .. import durable, schema
from ..config import ETLConfig, load_config
from ..extract import ConversationRecord, Extractor, MemberIndex, MessageRecord, SplitPoint
from ..faults import crash_point
from ..heap import release_free_memory
from ..media.copy import count_media, media_file_batches
from ..values import normalize_person_id
from .rows import RowWriter
from .sink import TableSink

TRANSFORM_VERSION = f"{schema.SCHEMA_VERSION}.10"
"""Changes whenever the transformation's output would change; part of the cache key."""

log = logging.getLogger(__name__)
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
    media: bool = False
    """Whether the archive has media files (listed in :data:`schema.MEDIA_FILES_PART`)."""
    splits: list[list[int | str]] = field(default_factory=list)
    """Split points (``SplitPoint.to_list``): where the workers' contiguous ranges may begin."""
    messages_bytes: int = 0
    """Size of ``messages.json`` where the split points were found."""

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
    """One process's part of the messages: the contiguous range from ``start`` to ``end``
    (file order, ``end`` excluded, ``None``: to the last), or, without split points, every
    ``workers``-th message from the ``index``-th."""

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
    media: bool
    """Whether the archive has media files: an attachment with a docid is then ``pending``."""
    members: MemberIndex | None = None
    """Where ``messages.json`` is in the archive (media left out): the worker does not walk it again."""
    start: SplitPoint | None = None
    """Where the contiguous range begins (``None``: the share is round-robin)."""
    next_start: SplitPoint | None = None

    @property
    def contiguous(self) -> bool:
        return self.start is not None

    @property
    def end(self) -> int | None:
        return self.next_start.index if self.next_start is not None else None

    def covers(self, i: int) -> bool:
        """Whether the ``i``-th message in file order is this share's."""
        return True if self.contiguous else i % self.workers == self.index


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
        splits: list[SplitPoint] = []
        for record in extractor.scan(splits):
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
        release_free_memory()  # the scan's parse buffers, before the workers start beside this process
        writer.flush_people()
        part = PartResult(rows=_close_sinks(sinks))
        workers = max(1, min(self.config.workers, sum(counts) // self.min_messages_per_worker))
        media = _write_media_files(extractor, self.work_dir)
        size = (extractor.messages_size() or 0) if splits else 0
        result = ScanResult(user_id, export_date, counts, workers, part, media, [p.to_list() for p in splits], size)
        _write_marker(self.work_dir, "conversations", asdict(result))
        crash_point("transform.scan_marked")
        return result, False

    # -- pass 2: messages -----------------------------------------------------------------

    def run(self, extractor: Extractor) -> TransformResult:
        scan, resumed = self.scan(extractor)
        result = TransformResult(self.work_dir, scan.user_id, scan.export_date, conversations=scan.conversations)
        result.add(scan.part)
        result.resumed_parts += int(resumed)
        try:
            outcomes = self._run_shares(self._shares(scan, extractor, contiguous=True), extractor)
        except RangesDoNotMeet as e:  # never seen; if it were, parsing everything twice is still right
            log.warning("%s: %s; the workers share the messages round-robin instead", extractor.name, e)
            for stale in [*self.work_dir.glob("*/messages-*.parquet"), *self.work_dir.glob(f"{PARTS_DIR}/messages-*")]:
                stale.unlink()
            outcomes = self._run_shares(self._shares(scan, extractor, contiguous=False), extractor)
        for parts, resumed_parts in outcomes:
            for part in parts:
                result.add(part)
            result.resumed_parts += resumed_parts
        return result

    def _shares(self, scan: ScanResult, extractor: Extractor, *, contiguous: bool) -> list[MessageShare]:
        """One share per worker: contiguous ranges where the scan found split points, else round-robin."""
        workers = scan.workers if extractor.path is not None else 1
        index = extractor.members()
        members = MemberIndex(messages=index.messages, members=index.members)
        ranges = _ranges([SplitPoint(*p) for p in scan.splits], scan.messages_bytes, workers) if contiguous else None
        if ranges is not None:
            workers = len(ranges)
        common = dict(
            path=str(extractor.path or ""),
            name=extractor.name,
            max_member_bytes=extractor.max_member_bytes,
            identity=extractor.identity,
            out_dir=str(self.work_dir),
            export_sha256=self.export_sha256,
            owner_id=scan.user_id,
            counts=tuple(scan.counts),
            workers=workers,
            config=self.config,
            media=scan.media,
            members=members,
        )
        if ranges is None:
            return [MessageShare(**common, index=k) for k in range(workers)]
        return [
            MessageShare(
                **common, index=k, start=ranges[k], next_start=ranges[k + 1] if k + 1 < workers else None
            )
            for k in range(workers)
        ]

    def _run_shares(self, shares: list[MessageShare], extractor: Extractor) -> list[tuple[list[PartResult], int]]:
        """The first share here, the others in worker processes; each share's parts."""
        if len(shares) == 1:
            return [transform_share(shares[0], extractor, self.check)]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(len(shares) - 1, mp_context=context) as pool:
            futures = [pool.submit(transform_share, share) for share in shares[1:]]
            outcomes = [transform_share(shares[0], extractor, self.check)]
            return outcomes + [future.result() for future in futures]


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
        share.path, name=share.name, max_member_bytes=share.max_member_bytes, identity=share.identity,
        members=share.members,
    )
    chunk = _Chunk(work_dir, prefix, len(parts), share)
    counts = share.counts
    start = share.start
    if start is None or start.index == 0:
        first, conv, remaining, position = 0, -1, 0, -1
    else:  # the range's first message is the start's: place it, then count on from there
        first, conv, remaining, position = start.index, start.conversation, counts[start.conversation] - start.position, start.position - 1
    end = share.end
    last = -1
    for i, data in enumerate(extractor.messages(start), first):
        if i == first and start is not None and start.index > 0 and not start.is_message(data):
            raise RangesDoNotMeet(f"the message at byte {start.offset} is not message {start.index}")
        if end is not None and i >= end:
            if share.next_start is not None and not share.next_start.is_message(data):
                raise RangesDoNotMeet(f"message {end} is not where the next range begins")
            break
        last = i
        while remaining == 0 and conv + 1 < len(counts):
            conv += 1
            remaining = counts[conv]
            position = -1
        remaining -= 1
        position += 1
        if i <= skip_until or not share.covers(i):
            continue
        chunk.add(MessageRecord(conv, position, data))
        if check is not None and chunk.part.message_records % 2048 == 0:
            check()
        if chunk.part.message_records >= share.config.chunk_messages:
            parts.append(chunk.close(last_index=i))
            chunk = _Chunk(work_dir, prefix, len(parts), share)
    if share.contiguous and end is None and last != sum(counts) - 1:
        raise RangesDoNotMeet(f"the last range ends at message {last}, not {sum(counts) - 1}")
    parts.append(chunk.close(last_index=_LAST))
    return parts, resumed


class RangesDoNotMeet(Exception):
    """A worker's range did not start or end at its split point: the shares are redone round-robin."""


def _ranges(points: list[SplitPoint], size: int, workers: int) -> list[SplitPoint] | None:
    """Where each of (at most) ``workers`` contiguous ranges of a ``size``-byte file begins, as even as the points allow.

    The first range begins at the file's first message. ``None`` when there are no points
    (the workers then share the messages round-robin, each parsing the whole file).
    """
    if workers < 2 or not points or size <= 0:
        return None
    starts = [SplitPoint(0, 0, 0, 0)]
    for k in range(1, workers):
        wanted = size * k / workers
        best = min(points, key=lambda p: abs(p.offset - wanted))
        if best.index > starts[-1].index:
            starts.append(best)
    return starts if len(starts) > 1 else None


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
        self.writer.has_media = share.media
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
        release_free_memory()
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


def _write_media_files(extractor: Extractor, work_dir: Path) -> bool:
    """List the archive's media files in the transformed export; whether it has any."""
    if not count_media(extractor):
        return False
    path = work_dir / schema.MEDIA_FILES_PART
    with pq.ParquetWriter(path, schema.MEDIA_FILES_SCHEMA) as writer:
        for batch in media_file_batches(extractor):
            writer.write_batch(batch)
    durable.sync_files([path])
    extractor.members().media.spill()  # not read again before the media copy, after the transform
    return True


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
