"""An HTML archive kept up to date: only conversations whose messages changed are written again.

Layout of the archive folder::

    index.html                      every conversation, and the statistics pictures
    stats/<name>.png                pictures handed in by the caller (optional)
    conversations/<key>/            one conversation as an HTML export of its own:
        conversations/<page>.html   its pages (previous/next links between them)
        media/                      the files its messages carry
    .archive-state.json             per conversation: its folder key and fingerprint

A conversation's fingerprint is computed by PostgreSQL from its rows: message count, every
message id with its version, edit and delete times, the attachments' media statuses, and
the conversation's name, kind and members. A run reads all fingerprints and the spans in
one snapshot, writes the conversations whose fingerprint differs from the state file
(each in a staged folder renamed into place, so a reader never sees half a conversation),
removes the folders of conversations that are gone, then writes the index and the state.
The fingerprints are read before the pages, in the same snapshot, so the state never
claims more than what was written. A person's new display name reaches the pages of the
conversations they are a member of (members are in the fingerprint); elsewhere, in
reactions or calls, at the next change of that conversation. Runs take a file lock on
the folder, so two never write it at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from psycopg import sql

from ..warehouse import Conversation, conversations, person_names, read_connection, table
from ..zones import parse_zone
from .as_html import _BASE, _CSP, _CSS, HtmlWriter
from .files import MediaExporter, UniqueNames
from .formats import Context
from .rows import Selection, messages, spans
from .staging import MARKER, staged_folder, write_marker

STATE_FILE = ".archive-state.json"
LOCK_FILE = ".archive.lock"
STATE_VERSION = 1
CONVERSATIONS_DIR = "conversations"
STATS_DIR = "stats"

_INDEX = _BASE + """<header><h1>Skype archive</h1>
<p>{{ rows|length }} conversations, {{ total_messages }} messages; times in UTC.</p></header>
<main>{% if pictures %}<h2>Statistics</h2>
{% for p in pictures %}<figure><img src="{{ p.href }}" alt="{{ p.title }}" style="max-width:100%;height:auto"><figcaption>{{ p.title }}</figcaption></figure>
{% endfor %}{% endif %}<h2>Conversations</h2>
<table><thead><tr><th>Conversation</th><th>Kind</th><th>Members</th><th>First message</th><th>Last message</th><th>Messages</th><th>Calls</th><th>With files</th></tr></thead><tbody>
{% for r in rows %}<tr><td><a href="{{ r.href }}">{{ r.conversation.name }}</a></td><td>{{ r.conversation.kind }}</td>
<td>{{ r.conversation.member_count }}{% if r.conversation.members %}: {{ r.conversation.members[:6]|join(", ") }}{% if r.conversation.member_count > 6 %}, …{% endif %}{% endif %}</td>
<td class="n">{{ r.span.first.strftime("%Y-%m-%d %H:%M") }}</td><td class="n">{{ r.span.last.strftime("%Y-%m-%d %H:%M") }}</td><td class="n">{{ r.span.messages }}</td><td class="n">{{ r.span.calls }}</td><td class="n">{{ r.span.with_files }}</td></tr>
{% endfor %}</tbody></table></main></body></html>
"""

_BACK = _BASE + """<p><a href="../../index.html">All conversations</a></p></body></html>
"""
"""A conversation folder's own index.html: its pages link "All conversations" to it."""

_ENV = Environment(autoescape=True, undefined=StrictUndefined)


@dataclass(frozen=True)
class Picture:
    """A statistics picture for the index: a file name under ``stats/``, its bytes and its title."""

    name: str
    data: bytes
    title: str


@dataclass
class ArchiveSummary:
    out_dir: str
    index: str
    conversations: int = 0
    messages: int = 0
    written: list[str] = field(default_factory=list)
    """Ids of the conversations written in this run."""
    removed: list[str] = field(default_factory=list)
    """Ids of the conversations whose folders were removed (no longer in the warehouse)."""
    unchanged: int = 0
    media_files: int = 0

    def to_json(self) -> dict:
        return {
            "out_dir": self.out_dir, "index": self.index, "conversations": self.conversations,
            "messages": self.messages, "written": len(self.written), "removed": len(self.removed),
            "unchanged": self.unchanged, "media_files": self.media_files,
        }


def folder_key(conversation_id: str) -> str:
    """A conversation's folder name: safe on every file system, stable, unique per id."""
    return hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:20]


def fingerprints(conn, schema: str) -> dict[str, str]:
    """Conversation id -> a digest of everything its pages show that a load can change."""
    query = sql.SQL(
        "SELECT m.conversation_id, count(*), "
        "md5(string_agg(m.message_id || '/' || m.version || '/' || coalesce(m.edited_at::text, '') || '/' "
        "|| coalesce(m.deleted_at::text, ''), ',' ORDER BY m.message_id)), "
        "(SELECT md5(string_agg(a.message_id || '/' || coalesce(a.media_status, '') || '/' || coalesce(a.media_path, ''), "
        "',' ORDER BY a.message_id, a.media_path, a.media_status)) FROM {attachments} a "
        "WHERE a.conversation_id = m.conversation_id) "
        "FROM {messages} m GROUP BY m.conversation_id"
    ).format(messages=table(schema, "messages"), attachments=table(schema, "attachments"))
    return {cid: f"{n}:{digest}:{files or ''}" for cid, n, digest, files in conn.execute(query)}


def _conversation_digest(c: Conversation) -> str:
    return hashlib.sha256(json.dumps([c.name, c.kind, list(c.members)]).encode()).hexdigest()[:16]


def read_state(out_dir: Path) -> dict[str, dict]:
    """The per-conversation state of the last run, or nothing (every conversation is written)."""
    try:
        data = json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION or not isinstance(data.get("conversations"), dict):
        return {}
    return data["conversations"]


def update_archive(
    url: str, schema: str, out_dir: Path, *, artifacts: Path | None = None, pictures: list[Picture] = (),
) -> ArchiveSummary:
    """Bring the archive in ``out_dir`` up to date with the warehouse; see the module's description."""
    out_dir = out_dir.expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time; a second one waits, then finds little to do
        return _update(url, schema, out_dir, artifacts, pictures)


def _update(url: str, schema: str, out_dir: Path, artifacts: Path | None, pictures: list[Picture]) -> ArchiveSummary:
    (out_dir / CONVERSATIONS_DIR).mkdir(exist_ok=True)
    zone = parse_zone("UTC")
    previous = read_state(out_dir)
    summary = ArchiveSummary(str(out_dir), str(out_dir / "index.html"))
    state: dict[str, dict] = {}
    with read_connection(url, schema) as conn:
        prints = fingerprints(conn, schema)
        chosen = [c for c in conversations(conn, schema) if c.conversation_id in prints]
        found = spans(conn, schema, [c.conversation_id for c in chosen], Selection(), zone)
        names = person_names(conn, schema)
        for conversation in chosen:
            cid = conversation.conversation_id
            key = folder_key(cid)
            fingerprint = f"{prints[cid]}:{_conversation_digest(conversation)}"
            before = previous.get(cid)
            folder = out_dir / CONVERSATIONS_DIR / key
            if before and before.get("fingerprint") == fingerprint and before.get("page") and (folder / before["page"]).is_file():
                state[cid] = before
                summary.unchanged += 1
            else:
                page, files = _write_conversation(conn, schema, folder, conversation, found[cid], names, zone, artifacts)
                state[cid] = {"key": key, "fingerprint": fingerprint, "page": page}
                summary.written.append(cid)
                summary.media_files += files
            summary.messages += found[cid].messages
        summary.conversations = len(chosen)
    kept = {entry["key"] for entry in state.values()}
    for cid, entry in previous.items():
        if cid not in state:
            summary.removed.append(cid)
    for folder in (out_dir / CONVERSATIONS_DIR).iterdir():
        if folder.name not in kept and (folder / MARKER).is_file():
            shutil.rmtree(folder, ignore_errors=True)
    _write_pictures(out_dir, pictures)
    rows = [
        {"conversation": c, "span": found[c.conversation_id],
         "href": f"{CONVERSATIONS_DIR}/{state[c.conversation_id]['key']}/{quote(state[c.conversation_id]['page'])}"}
        for c in chosen
    ]
    index = _ENV.from_string(_INDEX).render(
        csp=_CSP, css=Markup(_CSS), title="Skype archive", rows=rows,
        total_messages=summary.messages,
        pictures=[{"href": f"{STATS_DIR}/{quote(p.name)}", "title": p.title} for p in pictures],
    )
    _write_atomic(out_dir / "index.html", index.encode("utf-8"))
    _write_atomic(out_dir / STATE_FILE, json.dumps({"version": STATE_VERSION, "conversations": state}, indent=1).encode())
    return summary


def _write_conversation(conn, schema, folder, conversation, span, names, zone, artifacts) -> tuple[str, int]:
    """One conversation as its own small export folder; returns its first page (relative) and media count."""
    from . import _place_media

    with staged_folder(folder, force=True) as staging:
        top = UniqueNames()
        context = Context(folder=staging, zone=zone, names=names, files=top)
        writer = HtmlWriter(context)
        media = MediaExporter(staging, artifacts)
        writer.open_conversation(conversation, span)
        count = 0
        for message in messages(conn, schema, conversation.conversation_id, Selection(), zone):
            writer.write(message, _place_media(media, message.child("attachments")))
            count += 1
        written = writer.close_conversation()
        (staging / "index.html").write_text(
            _ENV.from_string(_BACK).render(csp=_CSP, css=Markup(_CSS), title=conversation.name), encoding="utf-8"
        )
        write_marker(staging, {"conversation_id": conversation.conversation_id, "messages": count, "schema": schema})
    return written.files[0], media.files


def _write_pictures(out_dir: Path, pictures: list[Picture]) -> None:
    stats = out_dir / STATS_DIR
    stats.mkdir(exist_ok=True)
    wanted = set()
    for picture in pictures:
        if "/" in picture.name or picture.name.startswith("."):
            raise ValueError(f"picture name {picture.name!r}: a plain file name is needed")
        wanted.add(picture.name)
        _write_atomic(stats / picture.name, picture.data)
    for old in stats.iterdir():
        if old.name not in wanted:
            old.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
