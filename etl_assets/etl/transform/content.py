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

import json

from ..values import (
    parse_epoch_auto,
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
from .markup.elements import _h_e_m, _storable  # also registers every element handler
from .markup.model import (
    Attachment,
    Call,
    CallParticipant,
    ContactCard,
    Link,
    Location,
    Mention,
    ParsedContent,
    Poll,
    Quote,
    ThreadEvent,
)
from .markup.render import _add_bare_links, _Ctx, _render
from .markup.tree import (
    _ANY_TAG_RE,
    _E_M_TEXT_RE,
    _EDIT_PREFIX,
    _HTML_LINES_RE,
    _MANY_NL_RE,
    _build,
    _El,
    _parse_attrs,
    _unescape,
)

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
