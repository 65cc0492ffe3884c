"""The generator: plans an export, streams its messages, packs the archive, returns its truth."""

from __future__ import annotations

import os
import random
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .vocabulary import (
    CHILD_TABLES,
    DEFAULT_END,
    DEFAULT_START,
    ROW_KEYS,
    TICKS,
    URL_FROM_PREFIX,
)
from .archive import _infer_archive, _pack
from .content import _ContentMaker
from .media import _MediaMaker
from .people import _Conv, _Person, _Planner, _ticks
from .stream import _Streamer
from .truth import ExportTruth


class _Generator(_Planner, _ContentMaker, _Streamer, _MediaMaker):
    """Plans one export and streams it. One instance per ``generate_export`` call."""

    def __init__(self, *, messages: int, seed: int, heavy_share: float, bad_records: int, owner: str | None,
                 start: datetime, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.r = self.rng.random
        self.seed = seed
        self.n_messages = messages
        self.heavy_share = min(max(heavy_share, 0.0), 1.0)
        self.n_bad = bad_records
        self.start_t = _ticks(start)
        self.end_t = max(_ticks(end), self.start_t + TICKS)
        self.export_date = datetime.fromtimestamp(self.end_t // TICKS, timezone.utc).strftime("%Y-%m-%dT%H:%M")
        self.user_id = owner or f"8:live:.cid.{self.rng.getrandbits(64):016x}"
        bare = self.user_id[2:] if self.user_id.startswith("8:") else self.user_id
        self.owner_bare = bare
        self.owner_canonical = self.user_id
        self.owner_url = URL_FROM_PREFIX + "8:" + bare
        self.owner_name = self._name()
        self.owner = _Person(self.user_id, self.owner_name, self.user_id)
        self.day_cache: dict[int, str] = {}
        self.by_type: dict[str, int] = {}
        self.rows: dict[str, int] = dict.fromkeys(CHILD_TABLES, 0)
        self.people_seen: set[str] = {self.user_id}
        self.memberships_seen: set[tuple[str, str]] = set()
        self.digest_fh: Any = None  # a text file when the caller asked for the per-message digest
        self._plain: str | None = None
        self._edited = self._deleted = False
        self.records = 0
        self.media_kinds = bytearray()
        self.used_ids: set[str] = set()
        self.heavy: _Conv | None = None
        self._rt_variants = self._variant_table()
        self._builders = self._type_builders()
        self.convs = self._plan_conversations()
        self._allocate()
        self._tables = self._kind_tables()
        self._place_features()
        self._place_bad_records()



def generate_export(path: str | Path, *, messages: int = 2000, seed: int = 0, archive: str | None = None,
                    heavy_share: float = 0.3, media: bool = True, bad_records: int = 0,
                    owner: str | None = None, start: datetime | None = None,
                    end: datetime | None = None, digest: str | Path | None = None) -> ExportTruth:
    """Write a realistic export to ``path`` and return what a correct ETL must find in it.

    ``messages`` is the exact number of distinct (conversationid, id) pairs; duplicates and
    ``bad_records`` come on top. ``archive`` is "tar", "tar.gz", "zip" or "json" (a bare
    messages.json), inferred from the suffix when omitted. With ``digest`` (a path), one JSON
    line per distinct message is written there as well (see ``truth.MessageDigest``): what the
    generator chose for it, for tests that compare every row.
    """
    if messages < 0 or bad_records < 0:
        raise ValueError("messages and bad_records must be >= 0")
    out = Path(path)
    kind = archive or _infer_archive(out)
    if kind not in ("tar", "tar.gz", "zip", "json"):
        raise ValueError(f"unknown archive kind {kind!r}")
    gen = _Generator(messages=messages, seed=seed, heavy_share=heavy_share, bad_records=bad_records, owner=owner,
                     start=start or DEFAULT_START, end=end or DEFAULT_END)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".messages.json.tmp")
    tmp = Path(tmp_name)
    media_files = media_members = 0
    digest_path = Path(digest) if digest is not None else None
    try:
        if digest_path is not None:
            gen.digest_fh = open(digest_path, "w", encoding="utf-8", buffering=1 << 20)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            gen.write_messages(fh)
        if kind == "json":
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        else:
            media_files, media_members = _pack(kind, out, tmp, gen, media, gen.end_t // TICKS)
    finally:
        if gen.digest_fh is not None:
            gen.digest_fh.close()
        if tmp.exists():
            tmp.unlink()
    rows = {k: gen.rows[k] for k in ROW_KEYS[:-1]}
    rows["media_files"] = media_files
    tables = {"conversations": len(gen.convs), "people": len(gen.people_seen),
              "memberships": len(gen.memberships_seen), "messages": messages,
              **{k: gen.rows[k] for k in CHILD_TABLES}, "message_sources": messages,
              "rejected_records": bad_records, "exports": 1}
    kinds = dict.fromkeys(("one_to_one", "group", "bot", "special"), 0)
    for c in gen.convs:
        kinds[c.kind] += 1  # the kind the generator gave the chat when it planned it
    return ExportTruth(
        path=out, user_id=gen.user_id, export_date=gen.export_date, conversations=len(gen.convs),
        conversation_kinds=kinds, message_records=gen.records, messages=messages,
        by_type=dict(sorted(gen.by_type.items())), rows=rows,
        heavy_conversation_id=gen.heavy.id if gen.heavy and gen.heavy.n else None,
        heavy_messages=gen.heavy.n if gen.heavy else 0, rejected=bad_records, tables=tables,
        media_members=media_members, digest_path=digest_path)
