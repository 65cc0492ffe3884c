"""HTML: a folder that opens from disk, with no server, no script and no network.

``index.html`` lists the conversations; each conversation is one or more pages under
``conversations/`` (``PAGE_MESSAGES`` messages per page, with previous/next links).
Pictures and video previews are shown from ``media/``; other files are linked.

Safety: every value goes through Jinja2 with autoescaping, so no message can add markup
or script; the pages carry a Content-Security-Policy that allows no script and only
local pictures and inline styles; the only links out are a message's own http, https
and mailto links, with ``rel="noreferrer"``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import IO
from urllib.parse import quote, urlsplit

from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup, escape

from ..warehouse import Conversation, Span
from .describe import (
    REACTION_EMOJI,
    attachment_label,
    call_line,
    duration,
    event_line,
    person,
)
from .files import safe_name
from .formats import Attached, Context, Written
from .rows import Message

PAGE_MESSAGES = 5000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters have no place in HTML text; they are shown as U+FFFD."""
PAGES_DIR = "conversations"

_CSP = (
    "default-src 'none'; img-src 'self' file:; media-src 'self' file:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d1d1f}
header,main,footer{max-width:56rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}h1{font-size:1.4rem;margin:.5rem 0}
nav{margin:.6rem 0;color:#555}nav a{margin-right:1rem}
a{color:#0a5bd8}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e3e8;vertical-align:top}
th{background:#eceef2;font-weight:600}td.n{text-align:right;white-space:nowrap}
.day{font-size:.85rem;color:#666;text-align:center;margin:1.2rem 0 .4rem;font-weight:600}
.msg{background:#fff;border-radius:8px;padding:.45rem .7rem;margin:.35rem 0;box-shadow:0 1px 1px #0001}
.meta{font-size:.8rem;color:#666}.who{font-weight:600;color:#1d1d1f}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.mention{background:#e6f0ff;border-radius:3px;padding:0 2px}
.note{color:#555;font-style:italic}
.deleted .text{text-decoration:line-through;color:#888}
.mark{font-size:.75rem;border-radius:3px;padding:0 4px;margin-left:.3rem;background:#eee;color:#555}
blockquote{margin:.3rem 0;padding:.2rem .6rem;border-left:3px solid #b8c4d6;color:#444;background:#f7f8fa;white-space:pre-wrap}
img.pic{display:block;max-width:min(100%,360px);height:auto;margin:.3rem 0;border-radius:4px}
.file{margin:.2rem 0}.reactions{font-size:.85rem;margin-top:.2rem}
.preview{border:1px solid #ddd;border-radius:4px;padding:.3rem .5rem;margin:.3rem 0;font-size:.9rem}
.poll ul{margin:.2rem 0 .2rem 1.2rem;padding:0}
"""

_BASE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css }}</style></head><body>
"""

_INDEX = _BASE + """<header><h1>Skype archive</h1>
<p>{{ written|length }} conversations, {{ total_messages }} messages{% if zone %}; times in {{ zone }}{% endif %}.</p></header>
<main><table><thead><tr><th>Conversation</th><th>Kind</th><th>Members</th><th>First message</th><th>Last message</th><th>Messages</th><th>Calls</th><th>With files</th></tr></thead><tbody>
{% for w in written %}<tr><td><a href="{{ w.href }}">{{ w.conversation.name }}</a></td><td>{{ w.conversation.kind }}</td>
<td>{{ w.conversation.member_count }}{% if w.conversation.members %}: {{ w.conversation.members[:6]|join(", ") }}{% if w.conversation.member_count > 6 %}, …{% endif %}{% endif %}</td>
<td class="n">{{ w.span.first.strftime("%Y-%m-%d %H:%M") }}</td><td class="n">{{ w.span.last.strftime("%Y-%m-%d %H:%M") }}</td><td class="n">{{ w.span.messages }}</td><td class="n">{{ w.span.calls }}</td><td class="n">{{ w.span.with_files }}</td></tr>
{% endfor %}</tbody></table></main></body></html>
"""

_PAGE_HEAD = _BASE + """<header><nav><a href="../index.html">All conversations</a></nav>
<h1>{{ conversation.name }}</h1>
<p class="meta">{{ conversation.kind }} · {{ span.messages }} messages · {{ span.first.strftime("%Y-%m-%d") }} to {{ span.last.strftime("%Y-%m-%d") }}{% if conversation.members %} · {{ conversation.members|join(", ") }}{% endif %}</p>
{{ pager }}</header><main>
"""

_PAGER = """{% if pages > 1 %}<nav class="pager">{% if prev %}<a href="{{ prev }}" rel="prev">← Previous page</a>{% endif %}
<span>Page {{ page }} of {{ pages }}</span>{% if next %}<a href="{{ next }}" rel="next">Next page →</a>{% endif %}</nav>{% endif %}"""

_PAGE_FOOT = """</main><footer>{{ pager }}</footer></body></html>
"""

_MESSAGE = """{% if day %}<div class="day">{{ day }}</div>
{% endif %}<div class="msg{% if m.deleted_at %} deleted{% endif %}" id="m-{{ m.message_id }}">
<div class="meta"><bdi class="who">{{ m.sender_name }}</bdi> <time datetime="{{ m.sent_at.isoformat() }}">{{ m.sent_at.strftime("%Y-%m-%d %H:%M") }}</time>
{%- if m.edited_at %}<span class="mark" title="{{ m.edited_at.isoformat() }}">edited {{ m.edited_at.strftime("%Y-%m-%d %H:%M") }}</span>{% endif %}
{%- if m.deleted_at %}<span class="mark" title="{{ m.deleted_at.isoformat() }}">deleted {{ m.deleted_at.strftime("%Y-%m-%d %H:%M") }}</span>{% endif %}</div>
{% for q in quotes %}<blockquote><div class="meta"><bdi>{{ q.author }}</bdi>{% if q.at %} · {{ q.at }}{% endif %}</div>{{ q.text }}</blockquote>
{% endfor %}{% if text %}<div class="text">{{ text }}</div>
{% endif %}{% for line in notes %}<div class="note">{{ line }}</div>
{% endfor %}{% if poll %}<div class="poll">Poll: {{ poll.question }}<ul>{% for o in poll.options %}<li>{{ o }}</li>{% endfor %}</ul></div>
{% endif %}{% if location %}<div class="note">📍 {{ location.label }}{% if location.href %} · <a href="{{ location.href }}" rel="noreferrer">map</a>{% endif %}</div>
{% endif %}{% for f in files %}<div class="file">{% if f.picture %}<a href="{{ f.href or f.picture }}"><img class="pic" src="{{ f.picture }}" alt="{{ f.label }}"{% if f.width %} width="{{ f.width }}" height="{{ f.height }}"{% endif %}></a>{% endif %}
{%- if f.href %}<a href="{{ f.href }}">{{ f.icon }} {{ f.label }}</a>{% else %}{{ f.icon }} {{ f.label }}{% if f.status %} <span class="mark">{{ f.status }}</span>{% endif %}{% endif %}</div>
{% endfor %}{% for p in previews %}<div class="preview">{% if p.href %}<a href="{{ p.href }}" rel="noreferrer">{{ p.title }}</a>{% else %}{{ p.title }}{% endif %}{% if p.site %} · {{ p.site }}{% endif %}{% if p.description %}<br>{{ p.description }}{% endif %}</div>
{% endfor %}{% for l in extra_links %}<div class="file"><a href="{{ l.href }}" rel="noreferrer">{{ l.text }}</a></div>
{% endfor %}{% if reactions %}<div class="reactions">{% for r in reactions %}<span title="{{ r.who }}">{{ r.emoji }} {{ r.count }}</span> {% endfor %}</div>
{% endif %}</div>
"""

_ENV = Environment(
    loader=DictLoader({"index": _INDEX, "head": _PAGE_HEAD, "foot": _PAGE_FOOT, "pager": _PAGER, "message": _MESSAGE}),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=False,
)


def safe_href(url: str | None) -> str | None:
    """``url`` if it is an http, https or mailto link without spaces or control characters, else ``None``."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https", "mailto") else None


def rich_text(text: str, links: list[dict], mentions: list[dict]) -> tuple[Markup, list[dict]]:
    """The text escaped, with its links as ``<a>`` and its mentions marked; links not found in it."""
    needles: list[tuple[str, str | None]] = []
    for link in links:
        href = safe_href(link.get("url"))
        shown = link.get("text") or link.get("url")
        if href and shown:
            needles.append((str(shown), href))
    for mention in mentions:
        if mention.get("name"):
            needles.append(("@" + str(mention["name"]), None))
    text = _CONTROL.sub("\ufffd", text)
    out: list[str] = []
    pos = 0
    remaining = list(needles)
    while remaining:
        found = [(text.find(n, pos), i) for i, (n, _) in enumerate(remaining)]
        found = [(at, i) for at, i in found if at >= 0]
        if not found:
            break
        at, i = min(found)
        needle, href = remaining.pop(i)
        out.append(str(escape(text[pos:at])))
        if href:
            out.append(f'<a href="{escape(href)}" rel="noreferrer">{escape(needle)}</a>')
        else:
            out.append(f'<span class="mention">{escape(needle)}</span>')
        pos = at + len(needle)
    out.append(str(escape(text[pos:])))
    unused = [{"href": h, "text": n} for n, h in remaining if h]
    return Markup("".join(out)), unused


_ICONS = {"photo": "🖼", "video": "🎬", "audio": "🎵", "voice_message": "🎤", "call_recording": "📼", "file": "📄"}
_STATUS = {"missing": "not in the archive", "skipped": "not copied: too large", "damaged": "damaged in the archive",
           "pending": "not copied yet"}


def _media_href(name: str) -> str:
    return "../media/" + quote(name)


class HtmlWriter:
    def __init__(self, context: Context) -> None:
        self.context = context
        self._fh: IO[str] | None = None
        self._written: Written | None = None
        self._pages: list[str] = []
        self._page = 0
        self._on_page = 0
        self._day: str | None = None
        (context.folder / PAGES_DIR).mkdir()
        self._page_names = _PageNames()
        self._message = _ENV.get_template("message")

    def open_conversation(self, conversation: Conversation, span: Span) -> None:
        count = max(1, -(-span.messages // PAGE_MESSAGES))
        stem = safe_name(conversation.name, conversation.conversation_id)
        self._pages = self._page_names.claim(stem, count)
        self._written = Written(conversation, span, [f"{PAGES_DIR}/{p}" for p in self._pages])
        self._page = 0
        self._open_page()

    def _pager(self) -> Markup:
        n = self._page
        return Markup(_ENV.get_template("pager").render(
            pages=len(self._pages), page=n + 1,
            prev=quote(self._pages[n - 1]) if n > 0 else None,
            next=quote(self._pages[n + 1]) if n + 1 < len(self._pages) else None,
        ))

    def _open_page(self) -> None:
        assert self._written is not None
        self._fh = open(self.context.folder / PAGES_DIR / self._pages[self._page], "w", encoding="utf-8", newline="\n")
        title = self._written.conversation.name + (f" — page {self._page + 1}" if len(self._pages) > 1 else "")
        self._fh.write(_ENV.get_template("head").render(
            csp=_CSP, css=Markup(_CSS), title=title, conversation=self._written.conversation,
            span=self._written.span, pager=self._pager(),
        ))
        self._on_page = 0
        self._day = None

    def _close_page(self) -> None:
        assert self._fh is not None
        self._fh.write(_ENV.get_template("foot").render(pager=self._pager()))
        self._fh.close()
        self._fh = None

    def write(self, message: Message, attached: list[Attached]) -> None:
        if self._on_page >= PAGE_MESSAGES and self._page + 1 < len(self._pages):
            self._close_page()
            self._page += 1
            self._open_page()
        assert self._fh is not None
        self._on_page += 1
        day = f"{message.sent_at:%A, %d %B %Y}"
        names = self.context.names
        text, extra_links = rich_text(message.text, message.child("links"), message.child("mentions"))
        notes = [line for line in (call_line(message, names), event_line(message, names)) if line]
        for card in message.child("contact_cards"):
            notes.append(f"Contact: {person(names, card.get('person_id'), card.get('name'))}")
        translation = message.single("translations")
        if translation and translation.get("text"):
            notes.append(
                f"Translation {translation.get('source_language') or '?'} → {translation.get('target_language') or '?'}: "
                f"{translation['text']}"
            )
        elif translation:
            notes.append(f"Translation settings: {translation.get('state') or translation.get('kind')}")
        poll = message.single("polls")
        location = message.single("locations")
        self._fh.write(self._message.render(
            m=message,
            day=day if day != self._day else None,
            quotes=[
                {"author": person(names, q.get("author_id"), q.get("author_name")),
                 "at": q["quoted_at"].strftime("%Y-%m-%d %H:%M") if isinstance(q.get("quoted_at"), datetime) else None,
                 "text": q.get("text") or ""}
                for q in message.child("quotes")
            ],
            text=text if message.text and not _only_file_names(message.text, attached) else None,
            notes=notes,
            poll={"question": poll.get("question") or "", "options": [str(o) for o in poll.get("options") or []]} if poll else None,
            location={
                "label": location.get("address") or f"{location.get('latitude')}, {location.get('longitude')}",
                "href": safe_href(location.get("url")),
            } if location else None,
            files=[f for f in (_file_view(a) for a in attached) if f],
            previews=[
                {"href": safe_href(p.get("url")), "title": p.get("title") or p.get("url") or "",
                 "site": p.get("site"), "description": p.get("description")}
                for p in message.child("url_previews")
            ],
            extra_links=extra_links,
            reactions=_reactions(message, names),
        ))
        self._day = day

    def close_conversation(self) -> Written:
        self._close_page()
        assert self._written is not None
        return self._written

    def finish(self, written: list[Written]) -> None:
        rows = [
            {"conversation": w.conversation, "span": w.span, "href": quote(w.files[0])}
            for w in written
        ]
        page = _ENV.get_template("index").render(
            csp=_CSP, css=Markup(_CSS), title="Skype archive", written=rows,
            total_messages=sum(w.span.messages for w in written), zone=self.context.zone.name,
        )
        (self.context.folder / "index.html").write_text(page, encoding="utf-8")


def _only_file_names(text: str, attached: list[Attached]) -> bool:
    """A file message whose text is just its file name: the file below says it already."""
    names = {str(a.row.get("original_name")) for a in attached if a.row.get("original_name")}
    return bool(names) and text.strip() in names


def _file_view(a: Attached) -> dict | None:
    kind = a.row.get("kind") or "file"
    label = attachment_label(a.row)
    if a.row.get("duration_seconds"):
        label += f", {duration(a.row['duration_seconds'])}"
    if a.file is None and not a.row.get("original_name"):
        return None  # cards, mojis and the like: the text says what they are
    view = {"icon": _ICONS.get(kind, "📎"), "label": label, "href": None, "picture": None, "width": None,
            "height": None, "status": None}
    if a.file is not None:
        view["href"] = _media_href(a.file.name)
    else:
        view["status"] = _STATUS.get(a.row.get("media_status") or "", "file not in the archive")
    shown = a.file if a.file is not None and a.file.image_size else a.preview if a.preview and a.preview.image_size else None
    if shown is not None and shown.image_size is not None:
        view["picture"] = _media_href(shown.name)
        view["width"], view["height"] = _fit(shown.image_size)
    return view


def _fit(size: tuple[int, int], box: int = 360) -> tuple[int, int]:
    w, h = size
    if w <= box:
        return w, h
    return box, max(1, round(h * box / w))


def _reactions(message: Message, names: dict[str, str]) -> list[dict]:
    grouped: dict[str, list[str]] = {}
    for r in message.child("reactions"):
        grouped.setdefault(r.get("reaction") or "?", []).append(person(names, r.get("person_id")))
    return [{"emoji": REACTION_EMOJI.get(k, k), "count": len(v), "who": ", ".join(v)} for k, v in grouped.items()]


class _PageNames:
    """Page file names ``<name>.html``, ``<name>.2.html``, ...: unique over the folder, in any case."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, stem: str, pages: int) -> list[str]:
        base, n = stem, 1
        while True:
            names = [f"{base}.html"] + [f"{base}.{k}.html" for k in range(2, pages + 1)]
            if not any(name.casefold() in self._taken for name in names):
                self._taken.update(name.casefold() for name in names)
                return names
            n += 1
            base = f"{stem} ({n})"
