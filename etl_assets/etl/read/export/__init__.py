"""``skype-etl export``: conversations of the warehouse as HTML, text, CSV or JSON files.

Checks every input before reading a row (zone, dates, folder, conversations, senders),
then streams each conversation once into the chosen writer inside a temporary folder
that becomes ``OUT_DIR`` only when everything is written.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ReadInputError
from ..warehouse import (
    conversations,
    person_exists,
    person_names,
    read_connection,
    select_conversations,
)
from ..zones import parse_bound, parse_zone, since_instant, until_instant
from .as_csv import CsvWriter
from .as_html import HtmlWriter
from .as_json import JsonWriter
from .as_text import TextWriter
from .files import MEDIA_DIR, MediaExporter, UniqueNames
from .formats import Attached, Context, Writer, Written
from .rows import Selection, messages, spans
from .staging import MARKER, check_target, staged_folder, write_marker

FORMATS: dict[str, type] = {"html": HtmlWriter, "txt": TextWriter, "csv": CsvWriter, "json": JsonWriter}


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how, as given on the command line (checked by :func:`run_export`)."""

    out_dir: Path
    format: str = "html"
    conversations: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    senders: tuple[str, ...] = ()
    zone: str | None = None
    force: bool = False
    bom: bool = False
    artifacts: Path | None = None
    """The artifact store holding ``media/``; without it no media files are exported."""
    progress: bool = False
    """Show a progress bar on stderr (the caller decides: only on a terminal)."""


@dataclass
class ExportSummary:
    out_dir: str
    format: str
    time_zone: str
    conversations: int = 0
    messages: int = 0
    media_files: int = 0
    media_bytes: int = 0
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "out_dir": self.out_dir, "format": self.format, "time_zone": self.time_zone,
            "conversations": self.conversations, "messages": self.messages,
            "media_files": self.media_files, "media_bytes": self.media_bytes,
        }


def run_export(url: str, schema: str, request: ExportRequest) -> ExportSummary:
    """Write the export; raises :class:`ReadInputError` for input a person must fix."""
    if request.format not in FORMATS:
        raise ReadInputError(f"--format: unknown format {request.format!r} (html, txt, csv or json)")
    zone = parse_zone(request.zone)
    since = parse_bound("--since", request.since) if request.since else None
    until = parse_bound("--until", request.until) if request.until else None
    if since and until:
        last, inclusive = until_instant(until, zone)
        first = since_instant(since, zone)
        if first > last or (first == last and not inclusive):
            raise ReadInputError(f"--since {request.since} is after --until {request.until}")
    out_dir = request.out_dir.expanduser().absolute()
    check_target(out_dir, request.force)
    selection = Selection(since=since, until=until, senders=tuple(s for s in request.senders if s.strip()))
    summary = ExportSummary(str(out_dir), request.format, zone.name)

    with read_connection(url, schema) as conn:
        chosen = select_conversations(conversations(conn, schema), request.conversations)
        for sender in selection.senders:
            if not person_exists(conn, schema, sender):
                raise ReadInputError(f"--from: nobody is called or has the id {sender!r}")
        found = spans(conn, schema, [c.conversation_id for c in chosen], selection, zone)
        chosen = [c for c in chosen if c.conversation_id in found]
        names = person_names(conn, schema)
        total = sum(found[c.conversation_id].messages for c in chosen)
        with staged_folder(out_dir, request.force) as folder:
            top = UniqueNames()
            for reserved in (MEDIA_DIR, MARKER, "index.html", "conversations"):
                top.claim(reserved)
            context = Context(folder=folder, zone=zone, names=names, files=top, bom=request.bom)
            writer: Writer = FORMATS[request.format](context)
            media = MediaExporter(folder, request.artifacts)
            written: list[Written] = []
            bar = _progress(total, request.progress)
            try:
                for conversation in chosen:
                    writer.open_conversation(conversation, found[conversation.conversation_id])
                    for message in messages(conn, schema, conversation.conversation_id, selection, zone):
                        writer.write(message, _place_media(media, message.child("attachments")))
                        summary.messages += 1
                        if bar is not None:
                            bar.update(1)
                    written.append(writer.close_conversation())
                writer.finish(written)
            finally:
                if bar is not None:
                    bar.close()
            summary.conversations = len(written)
            summary.media_files, summary.media_bytes = media.files, media.bytes
            summary.files = [f for w in written for f in w.files]
            write_marker(folder, {
                **summary.to_json(),
                "schema": schema,
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "filters": {
                    "conversations": list(request.conversations), "since": request.since,
                    "until": request.until, "from": list(selection.senders),
                },
            })
    return summary


def _place_media(media: MediaExporter, attachments: list[dict]) -> list[Attached]:
    placed = []
    for row in attachments:
        source = media.source(row.get("media_path")) if row.get("media_status") == "stored" else None
        file = media.add(source, row.get("original_name"))
        preview = None
        if file is not None and row.get("kind") == "video":
            preview_source = media.preview_of(row.get("media_path"))
            if preview_source is not None:
                stem = (row.get("original_name") or preview_source.name).rsplit(".", 1)[0]
                preview = media.add(preview_source, f"{stem} preview.{preview_source.name.rsplit('.', 1)[-1]}")
        placed.append(Attached(row, file, preview))
    return placed


def _progress(total: int, show: bool):
    """A tqdm bar on stderr when asked for (a terminal), else nothing."""
    if not show:
        return None
    import os

    from tqdm import tqdm

    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        columns = 0
    # A terminal that reports no width (some emulators, a bare pty) would get an empty bar.
    return tqdm(total=total, unit=" msg", file=sys.stderr, ncols=columns or 80, leave=False)
