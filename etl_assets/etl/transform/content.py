"""Skype message markup -> readable text plus the structure inside it.

Skype ``content`` is XML-ish HTML that is often malformed. :func:`parse_content` turns it
into what a person reads (``text``) and the structured parts (mentions, quotes, links,
attachments, calls, thread events, polls, locations, contact cards). It never raises and
never drops visible text: whatever it cannot interpret stays in ``text``.

Decisions worth knowing:

- ``Text`` messages are plain: no tag stripping and no entity decoding.
- ``Event/Call`` has ``text == ""``; the call lives in ``call``.
- Mentions, links, emoticons and attachments inside a ``<quote>`` belong to the quoted
  message, so they are not reported for the reply; the quote's text keeps them readable.
- An unclosed ``<quote>`` still yields a ``Quote``, and its text also stays in ``text``.
- ``deleted`` is true only when an ``<e_m>`` marker is present and nothing else is; an
  empty ``content`` is not called deleted here (``properties.deletetime`` says that).
- Plain text (no ``<`` and no ``&``) takes a fast path: ``text`` is the input stripped.
- Known inline tags (``<b>``, ``<i>``, ``<span>``, ...) never separate words; block tags
  and unknown tags with content (``<attribution>``, ``<context>``, ...) become line
  breaks, so words are never glued.
- A shared object's ``text`` is its caption, else its file name, else its ``<Title>``,
  else a Swift card's title/subtitle/text, else a scheduled call's subject.
- ``<img>`` (not an emoji image) becomes a ``photo`` attachment with ``uri`` = ``src``.
- Entities without ``;``, unknown names, and numeric references to NUL, surrogates or
  beyond U+10FFFF stay as written; a ``&#55357;&#56832;`` surrogate pair is joined.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from html.entities import html5 as _HTML5

from ..values import (
    escape_unstorable,
    parse_bool,
    parse_degrees,
    parse_duration,
    parse_epoch,
    parse_epoch_auto,
    parse_float,
    parse_int,
    parse_when,
    storable_text,
)

__all__ = [
    "Attachment",
    "Call",
    "CallParticipant",
    "ContactCard",
    "Link",
    "Location",
    "Mention",
    "ParsedContent",
    "Poll",
    "Quote",
    "ThreadEvent",
    "parse_content",
    "strip_markup",
]


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Mention:
    """``<at id="8:live:x">Name</at>``; ``person_id`` is ``"*"`` for everyone."""

    person_id: str
    name: str


@dataclass(slots=True)
class Quote:
    """A quoted message inside a reply; ``text`` is the quoted text without legacy prefixes."""

    author_id: str | None = None
    author_name: str | None = None
    quoted_at: datetime | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    text: str = ""


@dataclass(slots=True)
class Link:
    """An ``<a href>`` or a bare http(s) URL in the text."""

    url: str
    text: str


@dataclass(slots=True)
class Attachment:
    """A shared object: photo, file, video, audio, voice_message, call_recording, moji,
    card, album, scheduled_call or other."""

    kind: str
    uri_type: str | None = None
    original_name: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    doc_id: str | None = None
    uri: str | None = None
    thumbnail_uri: str | None = None
    extra: dict | None = None


@dataclass(slots=True)
class CallParticipant:
    """One ``<part>`` of a call's ``<partlist>``."""

    person_id: str | None = None
    name: str | None = None
    duration_seconds: float | None = None


@dataclass(slots=True)
class Call:
    """An ``Event/Call`` message; ``state`` is the partlist ``type`` as given."""

    call_id: str | None = None
    state: str | None = None
    participants: list[CallParticipant] = field(default_factory=list)


@dataclass(slots=True)
class ThreadEvent:
    """A group change from a ``ThreadActivity/*`` message."""

    event_type: str
    event_at: datetime | None = None
    initiator: str | None = None
    targets: list[str] = field(default_factory=list)
    value: str | None = None
    role: str | None = None


@dataclass(slots=True)
class Poll:
    """A ``Poll`` message."""

    question: str | None = None
    options: list[str] = field(default_factory=list)
    multiple_votes: bool | None = None
    expires_at: datetime | None = None


@dataclass(slots=True)
class Location:
    """A shared location, in decimal degrees."""

    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    url: str | None = None


@dataclass(slots=True)
class ContactCard:
    """One shared contact from ``RichText/Contacts``."""

    person_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class ParsedContent:
    """What a message says (``text``) and the structure found in its markup."""

    text: str = ""
    mentions: list[Mention] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    emoticons: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    call: Call | None = None
    thread_event: ThreadEvent | None = None
    poll: Poll | None = None
    location: Location | None = None
    contacts: list[ContactCard] = field(default_factory=list)
    edited_at: datetime | None = None
    deleted: bool = False


# --------------------------------------------------------------------------- public API


def parse_content(message_type: str | None, content: str | None) -> ParsedContent:
    """Readable text and structure of one message; never raises."""
    try:
        return _parse(message_type, content)
    except Exception:
        return ParsedContent(text=_crude_text(content))


def strip_markup(content: str | None) -> str:
    """Only the readable text of RichText ``content`` (same rules as :func:`parse_content`)."""
    return parse_content("RichText", content).text


# --------------------------------------------------------------------------- lexing

_TAG_RE = re.compile(
    r"<(?:(/?)([A-Za-z][\w:.\-]*)((?:\"[^\"<]*\"|'[^'<]*'|[^<>\"'])*|[^<>]*)>"
    r"|(!\[CDATA\[|!--)|[!?][^<>]*>)",
)
_ATTR_RE = re.compile(r"""([^\s=/<>"']+)(?:\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^\s"'>]+)))?""")
_SINGLE_ENTITY = r"&(?:#[xX]([0-9a-fA-F]{1,8})|#([0-9]{1,10})|([A-Za-z][A-Za-z0-9]{0,31}));"
_SINGLE_ENTITY_RE = re.compile(_SINGLE_ENTITY)
_ENTITY_RE = re.compile(
    r"&#(?:[xX]([dD][89abAB][0-9a-fA-F]{2})|(5[5-6][0-9]{3}));&#(?:[xX]([dD][c-fC-F][0-9a-fA-F]{2})|(5[6-7][0-9]{3}));|"
    + _SINGLE_ENTITY
)
_WS_RE = re.compile(r"[ \t\r\n\f\v]+")
_HTML_LINES_RE = re.compile(r"[ \t]*\n[ \t]*")
_MANY_NL_RE = re.compile(r"\n{3,}")
_URL_RE = re.compile(r"\bhttps?://[^\s<>\"'\u00a0\u3000]+", re.I)
_OBJECT_ID_RE = re.compile(r"/objects/([^/?#\s]+)")
_SKYPE_URL_RE = re.compile(r"^\s*https?://(?:[\w-]+\.)*(?:skype\.com|skype\.net|skypeassets\.com)(?:[:/?#]|$)", re.I)
_BOILERPLATE_RE = re.compile(r"^To view this\b[^:\n]*:\s*(?:https?://\S*)?\s*", re.I)
_LQ_PREFIX_RE = re.compile(
    r"^\s*\[(?:\d{9,13}|\d{1,2}:\d{2}(?::\d{2})?"
    r"|\d{1,4}[./-]\d{1,2}[./-]\d{1,4},?\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)\]"
    r"(?:[ \t]*[^\n:\[\]]{1,200}:)?[ \t]*"
)
_LQ_SUFFIX_RE = re.compile(r"\s*<<<\s*$")
_E_M_TEXT_RE = re.compile(r"<e_m\b[^<>]*>?", re.I)
_ANY_TAG_RE = re.compile(r"<[A-Za-z/!?][^<>]*>")

_EDIT_PREFIX = "Edited previous message: "
_MAX_DEPTH = 150
_NO_ATTRS: dict[str, str] = {}

_VOID = frozenset(
    "br hr img e_m meta input wbr link source col area base embed param track originalname filesize swift".split()
)
_BLOCK = frozenset(
    "p div li ul ol dl dt dd tr table thead tbody tfoot h1 h2 h3 h4 h5 h6 blockquote pre hr "
    "section article header footer nav aside figure figcaption address".split()
)
_INLINE = frozenset(
    "b i s u em strong span font code del ins strike sub sup small big mark a at ss "
    "abbr cite q tt kbd var label c_i".split()
)
_CAPTION_TAGS = frozenset(
    "b i s u em strong span font code del ins strike sub sup small big mark a at ss br p div pre emoji".split()
)
_THREAD_TYPES = {
    "addmember": "member_added",
    "deletemember": "member_removed",
    "topicupdate": "topic_changed",
    "pictureupdate": "picture_changed",
    "roleupdate": "role_changed",
    "historydisclosedupdate": "history_disclosed_changed",
    "joiningenabledupdate": "joining_enabled_changed",
}
_THREAD_KEYS = frozenset(("eventtime", "initiator"))
_KIND_BY_MESSAGE_TYPE = {
    "richtext/media_genericfile": "file",
    "richtext/media_video": "video",
    "richtext/media_audiomsg": "voice_message",
    "richtext/media_callrecording": "call_recording",
    "richtext/media_flikmsg": "moji",
    "richtext/media_card": "card",
    "richtext/media_album": "album",
    "richtext/scheduledcallinvite": "scheduled_call",
}


def _unescape_entity(m: re.Match) -> str:
    hi_hex, hi_dec, lo_hex, lo_dec, hex_, dec, name = m.groups()
    if hi_hex is None and hi_dec is None:
        return _reference(hex_, dec, name, m.group(0))
    hi = int(hi_hex, 16) if hi_hex is not None else int(hi_dec)
    lo = int(lo_hex, 16) if lo_hex is not None else int(lo_dec)
    if 0xD800 <= hi <= 0xDBFF and 0xDC00 <= lo <= 0xDFFF:
        return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    return _SINGLE_ENTITY_RE.sub(_unescape_single, m.group(0))


def _unescape_single(m: re.Match) -> str:
    return _reference(*m.groups(), m.group(0))


def _reference(hex_: str | None, dec: str | None, name: str | None, raw: str) -> str:
    """One character reference; anything unknown, NUL, a surrogate or out of range stays raw."""
    if name is not None:
        return _HTML5.get(name + ";", raw)
    cp = int(hex_, 16) if hex_ is not None else int(dec)  # type: ignore[arg-type]
    if 0x80 <= cp <= 0x9F:
        try:
            return bytes((cp,)).decode("cp1252")
        except UnicodeDecodeError:
            return chr(cp)
    if 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF:
        return chr(cp)
    return raw


def _unescape(s: str) -> str:
    """Decode known entities; unknown or broken ones stay as written."""
    return _ENTITY_RE.sub(_unescape_entity, s) if "&" in s else s


class _El:
    """One element of the lenient parse tree."""

    __slots__ = ("tag", "attrs", "children", "closed")

    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[_El | str] = []
        self.closed = False


def _parse_attrs(raw: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for m in _ATTR_RE.finditer(raw):
        key = m.group(1).lower()
        if key in attrs:
            continue
        value = m.group(2)
        if value is None:
            value = m.group(3)
            if value is None:
                value = m.group(4) or ""
        attrs[key] = _unescape(value) if "&" in value else value
    return attrs


def _build(s: str, collapse: bool) -> _El:
    """Lenient tree: unknown closers are ignored, unclosed elements end at the input's end."""
    root = _El("", _NO_ATTRS)
    root.closed = True
    stack = [root]
    top = root.children
    pos = skip = 0
    unterminated: set[str] = set()
    for m in _TAG_RE.finditer(s):
        start, end = m.span()
        if start < skip:
            continue
        closing, name, raw, opener = m.groups()
        if name is None:
            if opener is not None:
                term = "-->" if opener == "!--" else "]]>"
                stop = -1 if term in unterminated else s.find(term, end)
                if stop < 0:
                    unterminated.add(term)
                    continue
                if start > pos:
                    _add_text(top, s[pos:start], collapse)
                if term == "]]>" and stop > end:
                    cdata = s[end:stop]
                    top.append(_WS_RE.sub(" ", cdata) if collapse else cdata)
                pos = skip = stop + 3
                continue
            if start > pos:
                _add_text(top, s[pos:start], collapse)
            pos = end
            continue
        if start > pos:
            _add_text(top, s[pos:start], collapse)
        pos = end
        name = name.lower()
        if closing:
            for i in range(len(stack) - 1, 0, -1):
                if stack[i].tag == name:
                    stack[i].closed = True
                    del stack[i:]
                    top = stack[-1].children
                    break
            continue
        if raw:
            selfclosing = raw.rstrip().endswith("/")
            attrs = _parse_attrs(raw) if not raw.isspace() and raw != "/" else _NO_ATTRS
        else:
            selfclosing = False
            attrs = _NO_ATTRS
        el = _El(name, attrs)
        top.append(el)
        if selfclosing or name in _VOID:
            el.closed = True
        elif len(stack) < _MAX_DEPTH:
            stack.append(el)
            top = el.children
    if pos < len(s):
        _add_text(top, s[pos:], collapse)
    return root


def _add_text(top: list, text: str, collapse: bool) -> None:
    if "&" in text:
        text = _ENTITY_RE.sub(_unescape_entity, text)
    if collapse:
        text = _WS_RE.sub(" ", text)
    if text:
        top.append(text)


# --------------------------------------------------------------------------- rendering


class _Ctx:
    """What one render pass collects besides text."""

    __slots__ = (
        "mtype", "html", "thread", "mentions", "quotes", "links", "emoticons", "attachments",
        "call", "thread_event", "poll", "location", "contacts", "edited_at", "saw_edit", "link_depth",
    )

    def __init__(self, mtype: str, html: bool) -> None:
        self.mtype = mtype
        self.html = html
        self.thread = mtype.startswith("threadactivity/")
        self.mentions: list[Mention] = []
        self.quotes: list[Quote] = []
        self.links: list[Link] = []
        self.emoticons: list[str] = []
        self.attachments: list[Attachment] = []
        self.call: Call | None = None
        self.thread_event: ThreadEvent | None = None
        self.poll: Poll | None = None
        self.location: Location | None = None
        self.contacts: list[ContactCard] = []
        self.edited_at: datetime | None = None
        self.saw_edit = False
        self.link_depth = 0


def _render(el: _El, ctx: _Ctx, out: list[str]) -> None:
    for child in el.children:
        if child.__class__ is str:
            out.append(child)
            if ctx.link_depth == 0 and "://" in child:
                _add_bare_links(child, ctx.links)
        else:
            _node(child, ctx, out)


def _node(el: _El, ctx: _Ctx, out: list[str]) -> None:
    tag = el.tag
    handler = _HANDLERS.get(tag)
    if handler is not None:
        handler(el, ctx, out)
    elif tag in _BLOCK:
        _soft_break(out)
        _render(el, ctx, out)
        _soft_break(out)
    elif ctx.thread and any(c.__class__ is _El and c.tag in _THREAD_KEYS for c in el.children):
        _h_thread(el, ctx, out)
    elif el.children:
        if tag in _INLINE:
            _render(el, ctx, out)
        else:
            _soft_break(out)
            _render(el, ctx, out)
            _soft_break(out)


def _soft_break(out: list[str]) -> None:
    """End the current line unless it is already ended; spaces right before it are dropped."""
    while out:
        last = out[-1]
        if last.isspace() and "\n" not in last:
            out.pop()
            continue
        if last.rstrip(" \t")[-1:] != "\n":
            out.append("\n")
        return


def _render_to_str(el: _El, ctx: _Ctx) -> str:
    buf: list[str] = []
    _render(el, ctx, buf)
    return "".join(buf)


def _plain(el: _El) -> str:
    """All text below an element, markup ignored."""
    parts: list[str] = []
    stack = [iter(el.children)]
    while stack:
        for child in stack[-1]:
            if child.__class__ is str:
                parts.append(child)
            else:
                stack.append(iter(child.children))
                break
        else:
            stack.pop()
    return "".join(parts)


def _descendants(el: _El):
    stack = list(reversed(el.children))
    while stack:
        node = stack.pop()
        if node.__class__ is _El:
            yield node
            stack.extend(reversed(node.children))


def _child(el: _El, tag: str) -> _El | None:
    for c in el.children:
        if c.__class__ is _El and c.tag == tag:
            return c
    return None


def _add_bare_links(text: str, links: list[Link]) -> None:
    for m in _URL_RE.finditer(text):
        url = _trim_url(m.group(0))
        if len(url) > 8 and not any(link.url == url for link in links):
            links.append(Link(url=url, text=url))


def _trim_url(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets that follow a bare URL."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*":
            url = url[:-1]
        elif last in ")]}" and url.count(last) > url.count({")": "(", "]": "[", "}": "{"}[last]):
            url = url[:-1]
        else:
            return url
    return url


# --------------------------------------------------------------------------- element handlers


def _h_br(el: _El, ctx: _Ctx, out: list[str]) -> None:
    out.append("\n")


def _h_at(el: _El, ctx: _Ctx, out: list[str]) -> None:
    person_id = el.attrs.get("id")
    name = _render_to_str(el, ctx).strip()
    if name.startswith("@"):
        name = name[1:].lstrip()
    if not name:
        name = "all" if person_id == "*" else (person_id or "").strip()
    if name:
        out.append("@" + name)
    if person_id:
        ctx.mentions.append(Mention(person_id=person_id, name=name))


def _h_a(el: _El, ctx: _Ctx, out: list[str]) -> None:
    href = (el.attrs.get("href") or "").strip()
    ctx.link_depth += 1
    inner = _render_to_str(el, ctx)
    ctx.link_depth -= 1
    if inner.strip():
        out.append(inner)
        shown = inner.strip()
    else:
        if href:
            out.append(href)
        shown = href
    if href:
        ctx.links.append(Link(url=href, text=shown))


def _h_ss(el: _El, ctx: _Ctx, out: list[str]) -> None:
    kind = (el.attrs.get("type") or "").strip()
    inner = _render_to_str(el, ctx)
    if inner:
        out.append(inner)
    elif kind:
        out.append(f"({kind})")
    label = kind or inner.strip()
    if label:
        ctx.emoticons.append(label)


def _h_emoji(el: _El, ctx: _Ctx, out: list[str]) -> None:
    alt = el.attrs.get("alt") or ""
    inner = _render_to_str(el, ctx)
    shown = inner or alt
    if shown:
        out.append(shown)


def _h_img(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    alt = a.get("alt") or ""
    marker = (a.get("itemtype", "") + " " + a.get("class", "")).lower()
    if "emoji" in marker or "emoticon" in marker:
        if alt:
            out.append(alt)
        return
    src = (a.get("src") or "").strip()
    if src:
        ctx.attachments.append(
            Attachment(
                kind="photo",
                uri=src,
                width=parse_int(a.get("width")),
                height=parse_int(a.get("height")),
                extra={"alt": alt} if alt else None,
            )
        )


def _h_e_m(el: _El, ctx: _Ctx, out: list[str]) -> None:
    ctx.saw_edit = True
    a = el.attrs
    when = parse_epoch(a.get("ts_ms"), 1000) or parse_epoch_auto(a.get("ts"))
    if when is not None and (ctx.edited_at is None or when > ctx.edited_at):
        ctx.edited_at = when
    if el.children:
        _render(el, ctx, out)


def _h_legacyquote(el: _El, ctx: _Ctx, out: list[str]) -> None:
    if not el.closed:
        _render(el, ctx, out)


def _h_quote(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    sub = _Ctx(ctx.mtype, ctx.html)
    buf: list[str] = []
    _render(el, sub, buf)
    ctx.quotes.append(
        Quote(
            author_id=_opt(a.get("author")),
            author_name=_opt(a.get("authorname")),
            quoted_at=parse_epoch_auto(a.get("timestamp")),
            conversation_id=_opt(a.get("conversation")),
            message_id=_opt(a.get("messageid")),
            text=_clean_quote("".join(buf)),
        )
    )
    # A quote inside this one renders no text here (it is a closed quote): keep it as a quote too.
    ctx.quotes.extend(sub.quotes)
    if not el.closed:
        out.extend(buf)
    elif out and not out[-1][-1].isspace():
        out.append("\n")


def _clean_quote(text: str) -> str:
    """Quoted text without a legacy "[time] Name: " prefix or trailing "<<<" left outside <legacyquote>."""
    text = _LQ_PREFIX_RE.sub("", text, count=1)
    text = _LQ_SUFFIX_RE.sub("", text)
    return text.strip()


def _h_partlist(el: _El, ctx: _Ctx, out: list[str]) -> None:
    participants = []
    for part in _descendants(el):
        if part.tag != "part":
            continue
        name_el = _child(part, "name")
        duration_el = _child(part, "duration")
        participants.append(
            CallParticipant(
                person_id=_opt(part.attrs.get("identity")),
                name=_opt(_plain(name_el).strip()) if name_el is not None else None,
                duration_seconds=parse_float(_plain(duration_el)) if duration_el is not None else None,
            )
        )
    a = el.attrs
    ctx.call = Call(call_id=_opt(a.get("callid")), state=_opt(a.get("type")), participants=participants)


def _h_thread(el: _El, ctx: _Ctx, out: list[str]) -> None:
    event_at = initiator = value = role = None
    targets: list[str] = []
    detailed: list[str] = []
    for c in el.children:
        if c.__class__ is not _El:
            continue
        tag = c.tag
        if tag == "eventtime":
            event_at = parse_epoch(_plain(c), 1000)
        elif tag == "initiator":
            initiator = _opt(_plain(c).strip()) or _opt(c.attrs.get("name"))
        elif tag == "value":
            value = _plain(c).strip()
        elif tag == "target":
            id_el = _child(c, "id")
            target = _plain(id_el if id_el is not None else c).strip()
            if target and target not in targets:
                targets.append(target)
            role_el = _child(c, "role")
            if role_el is not None and role is None:
                role = _opt(_plain(role_el).strip())
        elif tag == "detailedtargetinfo":
            id_el = _child(c, "id")
            if id_el is not None and _plain(id_el).strip():
                detailed.append(_plain(id_el).strip())
        elif tag == "role" and role is None:
            role = _opt(_plain(c).strip())
    if not targets:
        targets = list(dict.fromkeys(detailed))
    event_type = _THREAD_TYPES.get(el.tag, "other")
    if event_type == "member_removed" and initiator and targets == [initiator]:
        event_type = "member_left"
    if event_type == "picture_changed" and value and value[:4].upper() == "URL@":
        value = value[4:]
    if ctx.thread_event is None:
        ctx.thread_event = ThreadEvent(
            event_type=event_type, event_at=event_at, initiator=initiator, targets=targets,
            value=value, role=role,
        )
    if event_type == "topic_changed" and value:
        out.append(value)


def _h_contacts(el: _El, ctx: _Ctx, out: list[str]) -> None:
    names = []
    for c in _descendants(el):
        if c.tag != "c":
            continue
        card = ContactCard(person_id=_opt(c.attrs.get("s")), name=_opt(c.attrs.get("f")) or _opt(_plain(c).strip()))
        ctx.contacts.append(card)
        shown = card.name or card.person_id
        if shown:
            names.append(shown)
    if names:
        _soft_break(out)
        out.append(", ".join(names))


def _h_location(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    url = None
    link_text = ""
    for d in _descendants(el):
        if d.tag == "a":
            url = _opt(d.attrs.get("href"))
            link_text = _plain(d).strip()
            break
    address = _opt(a.get("address"))
    ctx.location = Location(
        latitude=parse_degrees(a.get("latitude"), 90.0),
        longitude=parse_degrees(a.get("longitude"), 180.0),
        address=address,
        url=url,
    )
    shown = address or link_text or _plain(el).strip()
    if shown:
        _soft_break(out)
        out.append(shown)


def _h_files(el: _El, ctx: _Ctx, out: list[str]) -> None:
    names = []
    for f in _descendants(el):
        if f.tag != "file":
            continue
        a = f.attrs
        name = _plain(f).strip()
        index = a.get("index")
        extra: dict = {}
        if index is not None:
            extra["index"] = parse_int(index) if parse_int(index) is not None else index
        if a.get("tid"):
            extra["tid"] = a["tid"]
        ctx.attachments.append(
            Attachment(
                kind="file",
                original_name=name or None,
                size_bytes=parse_int(a.get("size")),
                uri=_opt(a.get("url")),
                extra=extra or None,
            )
        )
        if name:
            names.append(name)
    if names:
        _soft_break(out)
        out.append(", ".join(names))


def _h_uriobject(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    uri_type = (a.get("type") or "").strip()
    if uri_type.lower() == "poll" or (not uri_type and ctx.mtype == "poll"):
        _poll(el, ctx, out)
        return
    uri = _opt(a.get("uri"))
    original_name = size = title = description = b64 = call_id = None
    meta_name = None
    duration = parse_duration(a.get("duration"))
    if duration is None and a.get("durationms"):
        ms = parse_float(a.get("durationms"))
        duration = ms / 1000 if ms is not None else None
    for d in _descendants(el):
        tag = d.tag
        da = d.attrs
        if tag == "originalname":
            original_name = original_name or _opt((da.get("v") or "").strip())
        elif tag == "filesize":
            size = size if size is not None else parse_int(da.get("v"))
        elif tag == "meta":
            meta_name = meta_name or _opt((da.get("originalname") or "").strip())
        elif tag == "swift":
            b64 = b64 or da.get("b64")
        elif tag == "title":
            title = title or _opt(_plain(d).strip())
        elif tag == "description":
            description = description or _opt(_plain(d).strip())
        elif tag == "id" and (da.get("type") or "").lower() == "callid":
            call_id = call_id or _opt(da.get("value"))
        if duration is None and "duration" in da:
            duration = parse_duration(da["duration"])
    extra: dict = {}
    card_text = None
    if b64:
        card = _decode_card(b64)
        if card is not None:
            extra["card"] = card
            card_text = _card_text(card)
        else:
            extra["swift_b64"] = b64
    if title:
        extra["title"] = title
    if description:
        extra["description"] = description
    if call_id:
        extra["call_id"] = call_id
    subject = _opt((a.get("subject") or "").strip())
    if subject:
        extra["subject"] = subject
    for key, value in a.items():
        if "time" in key and value:
            extra[key] = value
            when = parse_when(value)
            if when is not None and "scheduled_at" not in extra and ctx.mtype == "richtext/scheduledcallinvite":
                extra["scheduled_at"] = when.isoformat()
    doc_id = _opt((a.get("doc_id") or "").strip())
    if doc_id is None and uri:
        m = _OBJECT_ID_RE.search(uri)
        doc_id = m.group(1) if m else None
    name = original_name or meta_name
    ctx.attachments.append(
        Attachment(
            kind=_kind(uri_type, ctx.mtype),
            uri_type=uri_type or None,
            original_name=name,
            size_bytes=size,
            width=parse_int(a.get("width")),
            height=parse_int(a.get("height")),
            duration_seconds=duration,
            doc_id=doc_id,
            uri=uri,
            thumbnail_uri=_opt(a.get("url_thumbnail")),
            extra=extra or None,
        )
    )
    shown = _caption(el, ctx, uri) or name or title or card_text or subject
    if shown:
        _soft_break(out)
        out.append(shown)
        _soft_break(out)


def _caption(el: _El, ctx: _Ctx, uri: str | None) -> str:
    """Human text inside a URIObject, without the "To view this ..., go to: <a>" boilerplate."""
    buf: list[str] = []
    kids = el.children
    skip_link = False
    for i, child in enumerate(kids):
        if child.__class__ is str:
            if child.rstrip().endswith(":") and _next_is_link(kids, i):
                skip_link = True
                continue
            buf.append(child)
            continue
        if child.tag == "a":
            href = child.attrs.get("href") or ""
            if skip_link or _SKYPE_URL_RE.match(href) or (uri and href.strip() == uri):
                skip_link = False
                continue
        elif child.tag not in _CAPTION_TAGS:
            continue
        _node(child, ctx, buf)
    text = "".join(buf).strip()
    if text[:12].lower() == "to view this":
        text = _BOILERPLATE_RE.sub("", text, count=1).strip()
    return text


def _next_is_link(kids: list, i: int) -> bool:
    for nxt in kids[i + 1 :]:
        if nxt.__class__ is str:
            if nxt.strip():
                return False
            continue
        return nxt.tag == "a"
    return False


def _poll(el: _El, ctx: _Ctx, out: list[str]) -> None:
    a = el.attrs
    question = _opt((a.get("title") or "").strip()) or _opt(_plain(el).strip())
    options = [o.strip() for o in (a.get("optionsencoded") or "").split("|") if o.strip()]
    ctx.poll = Poll(
        question=question,
        options=options,
        multiple_votes=parse_bool(a.get("allowmultiplevotes")),
        expires_at=parse_epoch(a.get("expirationtimems"), 1000),
    )
    if question:
        _soft_break(out)
        out.append(question)


def _kind(uri_type: str, mtype: str) -> str:
    if mtype == "richtext/media_album":
        return "album"
    if mtype == "richtext/scheduledcallinvite":
        return "scheduled_call"
    t = uri_type.lower()
    if t.startswith("picture"):
        return "photo"
    if "callrecording" in t:
        return "call_recording"
    if "flik" in t:
        return "moji"
    if t.startswith("video"):
        return "video"
    if t.startswith("audio"):
        return "voice_message" if "/message" in t else "audio"
    if t.startswith("file"):
        return "file"
    if t.startswith("swift"):
        return "card"
    return _KIND_BY_MESSAGE_TYPE.get(mtype, "other")


def _decode_card(b64: str) -> object | None:
    """Swift card JSON from lenient base64 (missing padding, URL-safe alphabet, whitespace)."""
    s = "".join(b64.split()).replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        raw = base64.b64decode(s)
        return _storable(json.loads(raw.decode("utf-8", "replace")))
    except Exception:
        return None


def _storable(value: object) -> object:
    """JSON decoded from inside ``content`` with NUL and unpaired surrogates spelled out
    (``\\u0000``), so no text taken from it is one PostgreSQL cannot store."""
    if isinstance(value, str):
        return value if storable_text(value) else escape_unstorable(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def _card_text(card: object) -> str | None:
    if not isinstance(card, dict):
        return None
    attachments = card.get("attachments")
    for att in attachments if isinstance(attachments, list) else ():
        content = att.get("content") if isinstance(att, dict) else None
        if isinstance(content, dict):
            for key in ("title", "subtitle", "text"):
                value = content.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
    return None


_HANDLERS = {
    "br": _h_br,
    "at": _h_at,
    "a": _h_a,
    "ss": _h_ss,
    "emoji": _h_emoji,
    "img": _h_img,
    "e_m": _h_e_m,
    "legacyquote": _h_legacyquote,
    "quote": _h_quote,
    "partlist": _h_partlist,
    "contacts": _h_contacts,
    "location": _h_location,
    "files": _h_files,
    "uriobject": _h_uriobject,
    **{tag: _h_thread for tag in _THREAD_TYPES},
}


# --------------------------------------------------------------------------- values


def _opt(value: str | None) -> str | None:
    return value if value else None


# --------------------------------------------------------------------------- driver


def _parse(message_type: str | None, content: str | None) -> ParsedContent:
    if content is None:
        return ParsedContent()
    if content.__class__ is not str:
        content = _coerce(content)
    if message_type is None:
        mtype = ""
    elif message_type.__class__ is str:
        mtype = message_type.lower()
    else:
        mtype = str(message_type).lower()
    if mtype.startswith("threadactivity/") and content.lstrip().startswith("{"):
        return _json_thread_event(mtype, content)
    if ("<" not in content and "&" not in content) or mtype == "text":
        return _plain_result(content)
    html = mtype == "richtext/html"
    root = _build(content, html)
    ctx = _Ctx(mtype, html)
    out: list[str] = []
    _render(root, ctx, out)
    text = "".join(out)
    if html:
        text = _MANY_NL_RE.sub("\n\n", _HTML_LINES_RE.sub("\n", text))
    if "<e_m" in text:
        text = _E_M_TEXT_RE.sub("", text)
    text = text.strip()
    if text.startswith(_EDIT_PREFIX):
        text = text[len(_EDIT_PREFIX) :].lstrip()
    deleted = ctx.saw_edit and not text and not (
        ctx.attachments or ctx.quotes or ctx.contacts or ctx.call or ctx.thread_event or ctx.poll or ctx.location
    )
    return ParsedContent(
        text=text,
        mentions=ctx.mentions,
        quotes=ctx.quotes,
        links=ctx.links,
        emoticons=ctx.emoticons,
        attachments=ctx.attachments,
        call=ctx.call,
        thread_event=ctx.thread_event,
        poll=ctx.poll,
        location=ctx.location,
        contacts=ctx.contacts,
        edited_at=ctx.edited_at,
        deleted=deleted,
    )


def _json_thread_event(mtype: str, content: str) -> ParsedContent:
    """Newer ``ThreadActivity/*`` bodies are JSON (``{"initiator": .., "members": [{"id": ..}]}``)."""
    try:
        body = _storable(json.loads(content))
    except (ValueError, RecursionError):
        return _plain_result(content)
    if not isinstance(body, dict):
        return _plain_result(content)
    members = body.get("members") or body.get("targets") or []
    targets = []
    for m in members if isinstance(members, list) else []:
        member = m.get("id") or m.get("mri") if isinstance(m, dict) else m
        if isinstance(member, str) and member not in targets:
            targets.append(member)
    initiator = body.get("initiator")
    kind = mtype.split("/", 1)[1]
    event = ThreadEvent(
        event_type=_JSON_THREAD_TYPES.get(kind, "other"),
        event_at=parse_epoch_auto(str(body["eventtime"])) if body.get("eventtime") is not None else None,
        initiator=initiator if isinstance(initiator, str) else None,
        targets=targets,
        value=body.get("value") if isinstance(body.get("value"), str) else None,
    )
    return ParsedContent(text="", thread_event=event)


_JSON_THREAD_TYPES = {"memberjoined": "member_joined", "addmember": "member_added", "deletemember": "member_removed"}


def _plain_result(content: str) -> ParsedContent:
    if "<e_m" in content:
        return _plain_with_edit_markers(content)
    text = content.strip()
    if text.startswith(_EDIT_PREFIX):
        text = text[len(_EDIT_PREFIX) :].lstrip()
    result = ParsedContent(text=text)
    if "://" in text:
        _add_bare_links(text, result.links)
    return result


def _plain_with_edit_markers(content: str) -> ParsedContent:
    """Plain text that still carries ``<e_m>`` markers: they never show, but they date the edit."""
    ctx = _Ctx("text", False)
    for m in _E_M_TEXT_RE.finditer(content):
        _h_e_m(_El("e_m", _parse_attrs(m.group(0)[4:])), ctx, [])
    result = _plain_result(_E_M_TEXT_RE.sub("", content))
    result.edited_at = ctx.edited_at
    result.deleted = not result.text
    return result


def _coerce(content: object) -> str:
    if isinstance(content, (bytes, bytearray)):
        return bytes(content).decode("utf-8", "replace")
    return str(content)


def _crude_text(content: object) -> str:
    """Last-resort text when parsing failed: tags dropped, entities decoded."""
    try:
        s = content if isinstance(content, str) else ("" if content is None else _coerce(content))
        return _unescape(_ANY_TAG_RE.sub(" ", s)).strip()
    except Exception:
        return content if isinstance(content, str) else ""
